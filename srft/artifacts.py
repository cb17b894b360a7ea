"""Atomic reads and writes of run artifacts.

Every file a stage produces is written to a temporary file beside its destination and then
renamed over it, so a crash never leaves a half-written artifact that a later stage would read.
Only the main process of a multi-process run writes: elsewhere the writers below do nothing, and
a process that reads what the main one wrote waits for it first (`srft.distributed.barrier`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from srft.distributed import is_main


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically; create parent folders as needed."""
    path = Path(path)
    if not is_main():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as indented JSON atomically."""
    return atomic_write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n"
    )


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write one JSON object per line atomically."""
    lines = [json.dumps(row, ensure_ascii=False, default=_jsonable) for row in rows]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def append_jsonl(path: str | Path, row: dict[str, Any]) -> None:
    """Append one JSON line (logs such as metrics.jsonl that grow during a run)."""
    path = Path(path)
    if not is_main():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(row, ensure_ascii=False, default=_jsonable) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file this package wrote (user files go through `srft.data.pairs`)."""
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def replace_dir(staging: Path, final: Path) -> Path:
    """Move a fully written `staging` folder to `final`, replacing what was there."""
    if not is_main():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    trash = final.with_name(f".{final.name}.old")
    if trash.exists():
        shutil.rmtree(trash)
    if final.exists():
        os.replace(final, trash)
    os.replace(staging, final)
    if trash.exists():
        shutil.rmtree(trash)
    return final


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def checkpoint_folders(folder: Path) -> list[Path]:
    """The `checkpoint-<step>` folders in `folder`, oldest step first."""
    return sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
