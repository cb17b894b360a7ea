"""Reading and writing preference-pair files.

One JSON object per line: `{"prompt": str, "chosen": str, "rejected": str}`, optionally with
numeric `score_chosen` and `score_rejected` (both or neither, on the annotator's scale) and a
string `subset` (the part of a dataset the pair comes from: accuracy is reported per subset). Other
keys are ignored and blank lines are skipped. A UTF-8 byte-order mark and CRLF line endings are
accepted. Parquet files and `datasets` Hub ids are read too.

Reading happens in three steps: `row_source` turns the file (or dataset) into `(line number,
raw dict)`, `flatten_row` brings HH-RLHF dialogues and message lists to the flat shape, and
`pair_from_row` turns one flat row into a `PreferencePair` or the reason it cannot.

Every fault is reported as a `DataError` with one line of text, `"{path}:{line}: {fault}"` for a
row or `"{path}: {fault}"` for the whole file.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srft.artifacts import atomic_write_jsonl
from srft.data.hub import is_hub_id
from srft.data.pair_formats import flatten_row
from srft.errors import DataError

TEXT_FIELDS = ("prompt", "chosen", "rejected")
SCORE_FIELDS = ("score_chosen", "score_rejected")
ON_INVALID_CHOICES = ("error", "drop")

_GZIP_MAGIC = b"\x1f\x8b"
_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_SHOWN_CHARS = 40  # values quoted in messages are cut here so a message stays one short line


@dataclass(frozen=True)
class PreferencePair:
    """A prompt with a preferred (`chosen`) and a dispreferred (`rejected`) response.

    Scores, when present, are the annotator's ratings on the scale the data declares.
    """

    prompt: str
    chosen: str
    rejected: str
    score_chosen: float | None = None
    score_rejected: float | None = None
    #: the part of a dataset the pair comes from (a `subset` field), for accuracy per subset
    subset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON Lines row for this pair; scores and subset that are None are left out."""
        row: dict[str, Any] = {
            "prompt": self.prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
        }
        if self.score_chosen is not None:
            row["score_chosen"] = self.score_chosen
        if self.score_rejected is not None:
            row["score_rejected"] = self.score_rejected
        if self.subset is not None:
            row["subset"] = self.subset
        return row


@dataclass(frozen=True)
class InvalidRow:
    """A row left out of a file read with `on_invalid="drop"`."""

    line: int  # 1-based line number in the file
    reason: str


@dataclass
class PairFile:
    """The valid pairs of one file and the rows dropped from it."""

    path: Path
    pairs: list[PreferencePair]
    dropped: list[InvalidRow] = field(default_factory=list)


#: how to leave invalid rows out instead of stopping at the first, said beside such a row
SKIP_INVALID = (
    "to skip invalid rows: data.on_invalid: drop; srft evaluate-rm --drop-invalid; "
    "srft validate-data --on-invalid drop"
)


def read_pairs(
    path: str | Path,
    *,
    score_scale: tuple[float, float] | None = None,
    on_invalid: str = "error",
    split: str = "train",
) -> PairFile:
    """Read and validate preference pairs from a JSONL or parquet file, or a `datasets` Hub id
    (`org/name`, or `org/name:split`; `split` otherwise). Rows may be srft's flat rows, HH-RLHF
    dialogues or message lists (see `srft.data.pair_formats`).

    `score_scale` is the (min, max) the scores must lie in; None accepts any finite score.
    `on_invalid="error"` raises `DataError` at the first bad row; `"drop"` leaves bad rows out
    and lists them in `PairFile.dropped`. File-level faults (missing, a directory, empty,
    compressed) raise in both modes, and so does a file whose every row is dropped.
    """
    if on_invalid not in ON_INVALID_CHOICES:
        raise ValueError(f"on_invalid must be one of {ON_INVALID_CHOICES}, got {on_invalid!r}")
    path = Path(path)
    pairs: list[PreferencePair] = []
    dropped: list[InvalidRow] = []
    for line, parsed in row_source(str(path), split):
        if isinstance(parsed, dict):
            parsed = flatten_row(parsed)
        result = parsed if isinstance(parsed, str) else pair_from_row(parsed, score_scale)
        if isinstance(result, PreferencePair):
            pairs.append(result)
        elif on_invalid == "drop":
            dropped.append(InvalidRow(line, result))
        else:
            raise DataError(f"{path}:{line}: {result} ({SKIP_INVALID})")
    if not pairs and not dropped:
        raise DataError(f"{path}: file is empty (no JSON lines)")
    if not pairs:
        first = dropped[0]
        raise DataError(
            f"{path}: no valid pair remains: all {len(dropped)} rows were dropped "
            f"(first at line {first.line}: {first.reason})"
        )
    return PairFile(path=path, pairs=pairs, dropped=dropped)


def write_pairs(path: str | Path, pairs: Iterable[PreferencePair]) -> Path:
    """Write pairs as JSON Lines (UTF-8, non-ASCII kept as is) atomically."""
    return atomic_write_jsonl(path, (pair.to_dict() for pair in pairs))


def split_by_prompt(
    pairs: Sequence[PreferencePair], fractions: Sequence[float], seed: int
) -> list[list[PreferencePair]]:
    """`pairs` cut into `len(fractions) + 1` parts by prompt: part i holds the pairs of
    `round(fraction_i x prompts)` prompts (at least one), drawn at random with `seed`, and the
    last part the rest. All the pairs of a prompt land in one part, so no part holds another's
    prompts. Raises `DataError` when too few prompts are left for the last part."""
    by_prompt: dict[str, list[PreferencePair]] = {}
    for pair in pairs:
        by_prompt.setdefault(pair.prompt, []).append(pair)
    prompts = list(by_prompt)
    random.Random(seed).shuffle(prompts)
    counts = [max(1, round(len(prompts) * fraction)) for fraction in fractions]
    if sum(counts) >= len(prompts):
        raise DataError(
            f"{len(prompts)} distinct prompts are too few to hold out {sum(counts)} of them and "
            "train on the rest: give more pairs or lower data.validation_fraction and "
            "data.test_fraction"
        )
    parts, start = [], 0
    for count in [*counts, len(prompts) - sum(counts)]:
        parts.append(
            [pair for prompt in prompts[start : start + count] for pair in by_prompt[prompt]]
        )
        start += count
    return parts


def pair_from_row(
    row: dict[str, Any], score_scale: tuple[float, float] | None = None
) -> PreferencePair | str:
    """Convert one flat row (`prompt`, `chosen`, `rejected`, scores) to a pair.

    Returns the pair, or a one-line reason naming the field and value at fault. Equal scores
    are a valid tie. Identical responses are rejected, except in a scored tie, where the data
    itself says neither is better (UltraFeedback has such rows).
    """
    for name in TEXT_FIELDS:
        reason = _text_fault(row, name)
        if reason:
            return reason
    scores = _scores(row, score_scale)
    if isinstance(scores, str):
        return scores
    score_chosen, score_rejected = scores
    identical = row["chosen"].strip() == row["rejected"].strip()
    if identical and (score_chosen is None or score_chosen != score_rejected):
        return "chosen and rejected are identical (after stripping whitespace)"
    subset = row.get("subset")
    if subset is not None and not isinstance(subset, str):
        return f"field 'subset' is {_json_type(subset)} ({_show(subset)}), not a string"
    return PreferencePair(
        row["prompt"], row["chosen"], row["rejected"], score_chosen, score_rejected, subset or None
    )


def row_source(source: str, split: str = "train") -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line or row number, raw row or fault) of a JSONL file, a parquet file or a Hub id."""
    path = Path(source)
    if not path.exists() and is_hub_id(source):
        yield from _hub_rows(source, split)
    elif path.suffix == ".parquet" and path.is_file():
        yield from _parquet_rows(path)
    else:
        yield from _decode_lines(_read_bytes(path))


def _hub_rows(source: str, split: str) -> Iterator[tuple[int, dict[str, Any] | str]]:
    name, _, named_split = source.partition(":")
    try:
        import datasets

        dataset = datasets.load_dataset(name, split=named_split or split)
    except Exception as err:  # the datasets library raises many kinds; all mean "not loadable"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(
            f"{source}: cannot load the dataset from the Hugging Face Hub ({first})"
        ) from None
    for number, row in enumerate(dataset, start=1):
        yield number, dict(row)


def _parquet_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow's errors for a corrupt or foreign file vary
        raise DataError(f"{path}: not a readable parquet file ({err})") from None
    yield from enumerate(table.to_pylist(), start=1)


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, or a DataError for the faults that concern the whole file."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a JSON Lines file")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"{path}: cannot be read ({err.strerror or err})") from err
    if data.startswith(_GZIP_MAGIC):
        raise DataError(
            f"{path}: file is gzip-compressed; decompress it (e.g. with gunzip) and pass the "
            "plain .jsonl file"
        )
    if data.startswith(_UTF16_BOMS):
        raise DataError(f"{path}: file is UTF-16 encoded; save it as UTF-8")
    return data


def _decode_lines(data: bytes) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield (1-based line number, parsed object or fault) for each non-blank line."""
    data = data.removeprefix(_UTF8_BOM)
    # Split the bytes on "\n" only: str.splitlines would also split on U+2028 and other
    # separators that JSON strings may legally hold raw.
    for line, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            where = f"byte 0x{raw[err.start]:02x} at offset {err.start} of the line"
            yield line, f"not valid UTF-8 ({where}); save the file as UTF-8"
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            yield line, f"not valid JSON ({err.msg} at column {err.colno})"
            continue
        if not isinstance(obj, dict):
            yield line, f"is {_json_type(obj)}, not a JSON object (expected one object per line)"
            continue
        yield line, obj


def _text_fault(row: dict[str, Any], name: str) -> str | None:
    """Why `row[name]` is not a usable text, or None when it is."""
    if name not in row:
        present = ", ".join(sorted(map(str, row))) or "none"
        return f"missing field '{name}' (fields present: {present})"
    value = row[name]
    if not isinstance(value, str):
        return f"field '{name}' is {_json_type(value)} ({_show(value)}), not a string"
    if not value:
        return f"field '{name}' is empty"
    if not value.strip():
        return f"field '{name}' is only whitespace ({_show(value)})"
    return None


def _scores(
    row: dict[str, Any], score_scale: tuple[float, float] | None
) -> tuple[float | None, float | None] | str:
    """The row's (score_chosen, score_rejected), (None, None), or why they are unusable."""
    present = [name for name in SCORE_FIELDS if name in row]
    if not present:
        return None, None
    if len(present) == 1:
        missing = next(name for name in SCORE_FIELDS if name not in row)
        return f"{present[0]} is present but {missing} is missing (give both scores or neither)"
    for name in SCORE_FIELDS:
        reason = _score_fault(name, row[name], score_scale)
        if reason:
            return reason
    score_chosen, score_rejected = float(row["score_chosen"]), float(row["score_rejected"])
    if score_chosen < score_rejected:
        return (
            f"score_chosen {_show(row['score_chosen'])} < score_rejected "
            f"{_show(row['score_rejected'])} contradicts the label (chosen must not score lower)"
        )
    return score_chosen, score_rejected


def _score_fault(name: str, value: Any, score_scale: tuple[float, float] | None) -> str | None:
    """Why `value` is not a usable score, or None when it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{name} is {_json_type(value)} ({_show(value)}), not a number"
    if not math.isfinite(_as_float(value)):
        return f"{name} is {_show(value)}, not a finite number"
    if score_scale is not None:
        low, high = score_scale
        if not low <= value <= high:
            return f"{name} {_show(value)} is outside the score scale [{low:g}, {high:g}]"
    return None


def _as_float(value: int | float) -> float:
    """`value` as a float; JSON integers too large for a float become infinity."""
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, with its article ("a list", "null")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _show(value: Any) -> str:
    """A short one-line JSON rendering of a value for an error message."""
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > _SHOWN_CHARS:
        text = text[: _SHOWN_CHARS - 3] + "..."
    return text
