"""srft/artifacts.py: atomic writes (folders made, content replaced, the old file kept when a
write fails, the usual file mode), JSON and JSON Lines round trips, and replace_dir."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from srft.artifacts import (
    atomic_write_json,
    atomic_write_jsonl,
    atomic_write_text,
    read_json,
    read_jsonl,
    replace_dir,
)


def test_atomic_write_text_creates_folders(tmp_path):
    path = tmp_path / "a" / "b" / "note.txt"
    assert atomic_write_text(path, "héllo\n") == path
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert [p.name for p in path.parent.iterdir()] == ["note.txt"]  # no temporary file left


def test_atomic_write_text_replaces_content(tmp_path):
    path = tmp_path / "note.txt"
    atomic_write_text(path, "a much longer first version\n")
    atomic_write_text(path, "short\n")
    assert path.read_text() == "short\n"
    assert [p.name for p in tmp_path.iterdir()] == ["note.txt"]


def test_atomic_write_text_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "note.txt"
    atomic_write_text(path, "old\n")
    with pytest.raises(TypeError):
        atomic_write_text(path, 42)  # type: ignore[arg-type]  # fails inside the write
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["note.txt"]


def test_json_and_jsonl_round_trip(tmp_path):
    obj = {"path": Path("/x/y"), "tensor": torch.tensor(0.5), "number": np.float32(0.25)}
    atomic_write_json(tmp_path / "a.json", obj)
    assert read_json(tmp_path / "a.json") == {"path": "/x/y", "tensor": 0.5, "number": 0.25}
    rows = [{"prompt": "é", "n": 1}, {"prompt": "b", "n": 2}]
    atomic_write_jsonl(tmp_path / "a.jsonl", rows)
    assert read_jsonl(tmp_path / "a.jsonl") == rows
    assert "é" in (tmp_path / "a.jsonl").read_text(encoding="utf-8")  # not escaped


@pytest.mark.parametrize("array", [torch.tensor([1, 2]), np.array([1, 2])])
def test_json_of_an_array(tmp_path, array):
    atomic_write_json(tmp_path / "a.json", {"array": array})
    assert read_json(tmp_path / "a.json") == {"array": [1, 2]}


def test_replace_dir_into_a_new_place(tmp_path):
    staging = tmp_path / ".staging" / "stage"
    staging.mkdir(parents=True)
    (staging / "a.txt").write_text("new")
    final = tmp_path / "out" / "stage"
    assert replace_dir(staging, final) == final
    assert (final / "a.txt").read_text() == "new"
    assert not staging.exists()


def test_replace_dir_replaces_the_old_folder(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "a.txt").write_text("new")
    final = tmp_path / "stage"
    final.mkdir()
    (final / "a.txt").write_text("old")
    (final / "stale.txt").write_text("only in the old folder")
    replace_dir(staging, final)
    assert sorted(p.name for p in final.iterdir()) == ["a.txt"]
    assert (final / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]  # no .stage.old left


def test_replace_dir_clears_a_leftover_trash_folder(tmp_path):
    # A crash between the two renames of an earlier call leaves `.stage.old` behind.
    (tmp_path / ".stage.old").mkdir()
    staging = tmp_path / "staging"
    staging.mkdir()
    replace_dir(staging, tmp_path / "stage")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    path = atomic_write_text(tmp_path / "report.md", "hello")
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
