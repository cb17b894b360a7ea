"""The package's import graph: no cycles (lazy imports inside functions count too), imports go
down the tiers of docs/architecture.md, stages never import each other, and the decisions
import no stage."""

import ast
from pathlib import Path

import srft

PACKAGE = Path(srft.__file__).parent
# Modules of srft/stages/ that every stage may import: they are not stages.
STAGE_SUPPORT = {"srft.stages.base", "srft.stages.remedies"}

# docs/architecture.md's tiers, bottom up: a module imports from its own tier or lower ones.
# A module belongs to the tier of the longest prefix listed.
TIERS: dict[str, int] = {
    **dict.fromkeys(
        ("srft.errors", "srft.artifacts", "srft.run_dir", "srft.registry", "srft.config"), 0
    ),
    **dict.fromkeys(("srft.data.hub", "srft.tracking", "srft.progress"), 0),
    **dict.fromkeys(("srft.template", "srft.launch", "srft.distributed"), 0),
    **dict.fromkeys(("srft.gates", "srft.outputs", "srft.manifests", "srft.decisions"), 1),
    **dict.fromkeys(("srft.tables", "srft.scoring"), 1),
    **dict.fromkeys(("srft.data", "srft.models", "srft.rl", "srft.evaluation"), 2),
    **dict.fromkeys(("srft.world", "srft.arithmetic", "srft.judges", "srft.annotation"), 2),
    **dict.fromkeys(("srft.memory", "srft.memory_plan", "srft.plots"), 2),
    "srft.stages": 3,
    **dict.fromkeys(("srft", "srft.pipeline", "srft.report", "srft.architecture"), 4),
    **dict.fromkeys(("srft.plugins", "srft.profiles", "srft.api", "srft.cli"), 4),
}


def tier(module: str) -> int:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in TIERS:
            return TIERS[prefix]
    raise AssertionError(f"{module} is in no tier: add it to TIERS and docs/architecture.md")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the srft modules it imports anywhere in its body."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from srft.stages import sft` imports the module srft.stages.sft
                targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
            else:
                continue
            found |= {t for t in targets if t in modules and t != name}
        graph[name] = found
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_lazy_imports():
    graph = import_graph()
    assert "srft.stages.sft" in graph["srft.pipeline"]  # imported inside stage_specs()
    assert "srft.models.loading" in graph["srft.annotation"]  # imported inside a function


def test_the_cycle_finder_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    assert cycle(import_graph()) is None


def test_imports_go_down_the_tiers():
    upward = [
        f"{module} (tier {tier(module)}) imports {target} (tier {tier(target)})"
        for module, targets in import_graph().items()
        for target in targets
        if tier(target) > tier(module)
    ]
    assert upward == []


def test_stages_never_import_each_other():
    graph = import_graph()
    stages = {m for m in graph if m.startswith("srft.stages.") and m not in STAGE_SUPPORT}
    for stage in stages:
        assert not graph[stage] & stages, stage


def test_the_decisions_import_no_stage():
    graph = import_graph()

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph[todo.pop()] - seen:
                seen.add(nxt)
                todo.append(nxt)
        return seen

    assert not {m for m in reachable("srft.decisions") if m.startswith("srft.stages")}
