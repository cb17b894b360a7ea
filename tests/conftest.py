import sys
import textwrap

import pytest

from srft.annotation import ANNOTATORS, JUDGES
from srft.evaluation.tasks import KINDS


@pytest.fixture
def write_plugin(tmp_path, monkeypatch):
    """A function writing a user's module into tmp_path, importable by its name. The module, and
    what it registers in srft's registries, are forgotten after the test."""
    monkeypatch.syspath_prepend(str(tmp_path))
    for registry in (KINDS, JUDGES, ANNOTATORS):
        registry.names()  # srft's own names are in before the copy
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    written: list[str] = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)
