"""Reading back what a run wrote to its experiment trackers: TensorBoard's event files, MLflow's
database store and W&B's offline run file."""

import json
import struct
from pathlib import Path

#: W&B's offline run file: a 7-byte header, then LevelDB's log format (32 KiB blocks of records,
#: each a 7-byte header of checksum, length and type; FULL = 1, FIRST = 2, MIDDLE = 3, LAST = 4)
WANDB_HEADER = 7
BLOCK = 32768


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def tensorboard_texts(folder: Path, tag: str) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    tag = f"{tag}/text_summary"  # where SummaryWriter.add_text puts it
    if tag not in events.Tags()["tensors"]:
        return []
    return [e.tensor_proto.string_val[0].decode() for e in events.Tensors(tag)]


def _mlflow_run(run_root: Path, experiment: str):
    """The client of the run directory's MLflow database and the one run in `experiment`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{run_root.resolve() / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([found.experiment_id])
    return client, run


def mlflow_metrics(run_root: Path, experiment: str = "srft") -> dict[str, list[tuple[int, float]]]:
    client, run = _mlflow_run(run_root, experiment)
    return {
        key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
        for key in run.data.metrics
    }


def mlflow_artifacts(run_root: Path, experiment: str = "srft") -> list[str]:
    client, run = _mlflow_run(run_root, experiment)
    return [a.path for a in client.list_artifacts(run.info.run_id)]


def wandb_history(run_root: Path) -> list[dict]:
    """Every row the offline W&B run in `run_root/wandb` logged."""
    from wandb.proto import wandb_internal_pb2

    (path,) = (run_root / "wandb").glob("offline-run-*/run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    rows, pending, at = [], b"", WANDB_HEADER
    while at + 7 <= len(data):
        left = BLOCK - at % BLOCK
        if left < 7:  # the padding at a block's end
            at += left
            continue
        _, length, kind = struct.unpack("<IHB", data[at : at + 7])
        if length == 0 and kind == 0:
            at += left
            continue
        pending += data[at + 7 : at + 7 + length]
        at += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                items = record.history.item
                rows.append(
                    {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}
                )
    return rows
