"""Which Trainer checkpoint a stage resumes: the latest one its strategy wrote."""

from srft.config import ComputeConfig
from srft.models.training import resumable_checkpoint

DDP = ComputeConfig(num_devices=2)
FSDP = ComputeConfig(num_devices=2, strategy="fsdp")


def test_a_stage_resumes_the_latest_checkpoint_of_its_own_strategy(tmp_path):
    for step, state_file in ((8, "optimizer.pt"), (16, "optimizer.bin"), (24, "optimizer.pt")):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / state_file).write_bytes(b"")
    assert resumable_checkpoint(tmp_path, DDP) == str(tmp_path / "checkpoint-24")
    assert resumable_checkpoint(tmp_path, FSDP) == str(tmp_path / "checkpoint-16")


def test_no_checkpoint_of_its_strategy_starts_over(tmp_path):
    assert resumable_checkpoint(tmp_path, DDP) is None
    (tmp_path / "checkpoint-8").mkdir()
    (tmp_path / "checkpoint-8" / "optimizer.pt").write_bytes(b"")
    assert resumable_checkpoint(tmp_path, FSDP) is None
