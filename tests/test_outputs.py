"""The outputs records: a record survives its manifest, and a missing or renamed field, or a
missing file, fails loudly."""

from pathlib import Path
from typing import ClassVar

import pytest

from srft.errors import SrftError
from srft.manifests import stage_manifest
from srft.outputs import SFTOutputs, StageOutputs, outputs_from_manifest, read_outputs
from srft.run_dir import RunDir


class Made(StageOutputs):
    STAGE: ClassVar[int] = 1
    model: Path = Path("model")
    notes: Path | None = None
    score: float
    table: dict[str, float]


def published(tmp_path: Path, record: StageOutputs) -> tuple[dict, Path]:
    folder = tmp_path / "stage1_sft"
    (folder / "model").mkdir(parents=True)
    return stage_manifest(1, "sft", "done", "f" * 64, 0, seconds=1.0, outputs=record), folder


def test_a_record_comes_back_from_its_manifest_with_its_files_located(tmp_path):
    manifest, folder = published(tmp_path, Made(score=0.5, table={"a": 1.0}))
    assert manifest["outputs"] == {
        "model": "model",
        "notes": None,
        "score": 0.5,
        "table": {"a": 1.0},
    }
    assert manifest["files"] == ["model", "notes"]
    back = outputs_from_manifest(Made, manifest, folder)
    assert back.model == folder / "model"
    assert back.notes is None
    assert (back.score, back.table) == (0.5, {"a": 1.0})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o.pop("score"), "outputs.score: Field required"),
        (lambda o: o.update(scores=o.pop("score")), "outputs.score: Field required"),
        (lambda o: o.update(score="high"), "outputs.score: Input should be a valid number"),
    ],
)
def test_a_missing_or_renamed_field_fails_loudly(tmp_path, change, message):
    manifest, folder = published(tmp_path, Made(score=0.5, table={}))
    change(manifest["outputs"])
    with pytest.raises(SrftError, match=message) as caught:
        outputs_from_manifest(Made, manifest, folder)
    assert str(folder / "manifest.json") in str(caught.value)
    assert "Made" in str(caught.value)


def test_a_manifest_without_a_record_or_with_a_missing_file_fails(tmp_path):
    manifest, folder = published(tmp_path, Made(score=0.5, table={}))
    with pytest.raises(SrftError, match="no outputs record; run stage 1 again"):
        outputs_from_manifest(Made, {"status": "done"}, folder)
    (folder / "model").rmdir()
    with pytest.raises(SrftError, match=r"outputs.model: .*model is missing"):
        outputs_from_manifest(Made, manifest, folder)
    assert outputs_from_manifest(Made, manifest, folder, check_files=False).score == 0.5


def test_read_outputs_needs_the_stage_published(tmp_path):
    with pytest.raises(SrftError, match="stage 1 has not been published"):
        read_outputs(RunDir(tmp_path), SFTOutputs)


def test_scalars_leave_out_files_and_nested_values():
    record = Made(score=0.5, table={"a": 1.0})
    assert record.scalars() == {"score": 0.5}


def test_default_paths_are_the_file_fields_defaults():
    assert Made.default_path("model") == Path("model")
    with pytest.raises(KeyError):
        Made.default_path("score")
