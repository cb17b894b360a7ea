"""docs/architecture.md describes the stages as they are registered."""

from pathlib import Path

from srft.architecture import stage_graph
from srft.pipeline import stage_specs

DOC = Path(__file__).parents[1] / "docs" / "architecture.md"


def test_the_architecture_doc_lists_the_registered_stages():
    specs = stage_specs()
    text = DOC.read_text(encoding="utf-8")
    assert stage_graph(specs) in text, "docs/architecture.md is stale: run `make docs`"
    for number, spec in specs.items():
        assert f"| {number} | {spec.name} |" in text
        assert f"`{spec.outputs.__name__}`" in text


def test_every_field_of_every_record_says_what_it_holds():
    missing = [
        f"{spec.outputs.__name__}.{name}"
        for spec in stage_specs().values()
        for name, field in spec.outputs.model_fields.items()
        if not field.description
    ]
    assert missing == []
