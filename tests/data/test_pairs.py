import gzip
import json
from pathlib import Path

import pytest

from srft.data.pairs import (
    SKIP_INVALID,
    InvalidRow,
    PreferencePair,
    pair_from_row,
    read_pairs,
    write_pairs,
)
from srft.errors import DataError

GOOD = {"prompt": "Name a fruit.", "chosen": "Apple.", "rejected": "Carrot."}


def line(**fields) -> str:
    """One JSON line: the good row with `fields` changed (a value of ... removes the key)."""
    row = {**GOOD, **fields}
    return json.dumps({key: value for key, value in row.items() if value is not ...})


def write(tmp_path: Path, content: str | bytes, name: str = "pairs.jsonl") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def fault(path: Path, **kwargs) -> str:
    """The one-line DataError message `read_pairs` raises for `path`."""
    with pytest.raises(DataError) as caught:
        read_pairs(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def row_fault(tmp_path: Path, bad_line: str, **kwargs) -> str:
    """The message for a file whose line 2 is `bad_line`; checks it names file and line."""
    path = write(tmp_path, line() + "\n" + bad_line + "\n" + line() + "\n")
    message = fault(path, **kwargs)
    assert message.startswith(f"{path}:2: ")
    # and it says how to skip such rows instead
    assert message.endswith(f" ({SKIP_INVALID})")
    return message.removesuffix(f" ({SKIP_INVALID})")


# --- whole-file faults -----------------------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jsonl"
    assert fault(path) == f"{path}: file not found"


def test_directory(tmp_path):
    assert fault(tmp_path) == f"{tmp_path}: is a directory, not a JSON Lines file"


def test_empty_file(tmp_path):
    path = write(tmp_path, b"")
    assert fault(path) == f"{path}: file is empty (no JSON lines)"


def test_whitespace_only_file(tmp_path):
    path = write(tmp_path, "\n  \n\t\r\n")
    assert fault(path) == f"{path}: file is empty (no JSON lines)"


def test_gzip_file(tmp_path):
    path = write(tmp_path, gzip.compress((line() + "\n").encode()), name="pairs.jsonl.gz")
    message = fault(path)
    assert message.startswith(f"{path}: file is gzip-compressed")
    assert "decompress" in message


def test_utf16_file(tmp_path):
    path = write(tmp_path, (line() + "\n").encode("utf-16"))
    assert fault(path) == f"{path}: file is UTF-16 encoded; save it as UTF-8"


# --- faults in one line ----------------------------------------------------------------------


def test_invalid_utf8_names_the_line(tmp_path):
    row = json.dumps({**GOOD, "chosen": "Crème brûlée."}, ensure_ascii=False)
    latin1 = row.encode("latin-1")
    path = write(tmp_path, line().encode() + b"\n" + latin1 + b"\n")
    # The "è" of "Crème" is byte 0xe8 in Latin-1, 41 bytes into the line.
    assert fault(path) == (
        f"{path}:2: not valid UTF-8 (byte 0xe8 at offset 41 of the line); save the file as UTF-8"
        f" ({SKIP_INVALID})"
    )


def test_not_json(tmp_path):
    message = row_fault(tmp_path, '{"prompt": "a", "chosen": "b" "rejected": "c"}')
    assert "not valid JSON (Expecting ',' delimiter at column 31)" in message


@pytest.mark.parametrize(
    ("text", "kind"),
    [('["a", "b", "c"]', "a list"), ('"a pair"', "a string"), ("3", "a number"), ("null", "null")],
)
def test_json_that_is_not_an_object(tmp_path, text, kind):
    message = row_fault(tmp_path, text)
    assert f"is {kind}, not a JSON object" in message


@pytest.mark.parametrize("name", ["prompt", "chosen", "rejected"])
def test_missing_field(tmp_path, name):
    message = row_fault(tmp_path, line(**{name: ...}))
    assert f"missing field '{name}'" in message


def test_missing_field_lists_the_fields_present(tmp_path):
    message = row_fault(tmp_path, json.dumps({"question": "q", "answer": "a"}))
    assert message.endswith("missing field 'prompt' (fields present: answer, question)")


def test_empty_field(tmp_path):
    assert row_fault(tmp_path, line(chosen="")).endswith("field 'chosen' is empty")


def test_whitespace_only_field(tmp_path):
    message = row_fault(tmp_path, line(rejected=" \n\t"))
    assert message.endswith(r"""field 'rejected' is only whitespace (" \n\t")""")


@pytest.mark.parametrize(
    ("value", "shown"),
    [(42, "a number (42)"), (["a"], 'a list (["a"])'), (None, "null (null)")],
)
def test_field_that_is_not_a_string(tmp_path, value, shown):
    message = row_fault(tmp_path, line(prompt=value))
    assert message.endswith(f"field 'prompt' is {shown}, not a string")


def test_only_one_score(tmp_path):
    message = row_fault(tmp_path, line(score_chosen=8))
    assert message.endswith(
        "score_chosen is present but score_rejected is missing (give both scores or neither)"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [("8", 'a string ("8")'), (True, "a boolean (true)"), (None, "null (null)")],
)
def test_score_that_is_not_a_number(tmp_path, value, shown):
    message = row_fault(tmp_path, line(score_chosen=value, score_rejected=2))
    assert message.endswith(f"score_chosen is {shown}, not a number")


@pytest.mark.parametrize(
    ("literal", "shown"),
    [
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
        ("1" + "0" * 400, "1" + "0" * 36 + "..."),  # overflows a float; shown cut to 40 chars
    ],
)
def test_score_that_is_not_finite(tmp_path, literal, shown):
    # Python's json accepts these literals, so they reach the score check.
    text = '{"prompt": "p", "chosen": "c", "rejected": "r", "score_chosen": 9, '
    text += f'"score_rejected": {literal}}}'
    message = row_fault(tmp_path, text)
    assert message.endswith(f"score_rejected is {shown}, not a finite number")


def test_score_outside_the_scale(tmp_path):
    message = row_fault(tmp_path, line(score_chosen=11, score_rejected=3), score_scale=(1, 10))
    assert message.endswith("score_chosen 11 is outside the score scale [1, 10]")


def test_score_contradicts_the_label(tmp_path):
    message = row_fault(tmp_path, line(score_chosen=3, score_rejected=7.5))
    expected = (
        "score_chosen 3 < score_rejected 7.5 contradicts the label (chosen must not score lower)"
    )
    assert message.endswith(expected)


def test_identical_responses(tmp_path):
    message = row_fault(tmp_path, line(chosen="Apple.", rejected="  Apple.\n"))
    assert message.endswith("chosen and rejected are identical (after stripping whitespace)")


def test_identical_responses_scored_differently(tmp_path):
    message = row_fault(
        tmp_path, line(chosen="Apple.", rejected="Apple.", score_chosen=8, score_rejected=7)
    )
    assert message.endswith("chosen and rejected are identical (after stripping whitespace)")


def test_first_fault_is_reported_with_its_own_line(tmp_path):
    path = write(tmp_path, "\n".join([line(), "", line(), line(chosen=7), line(rejected="")]))
    assert fault(path).startswith(f"{path}:4: field 'chosen' is a number")


# --- valid input -------------------------------------------------------------------------------


def test_reads_pairs_and_scores(tmp_path):
    path = write(tmp_path, line() + "\n" + line(score_chosen=8, score_rejected=6.5) + "\n")
    pair_file = read_pairs(path)
    assert pair_file.path == path
    assert pair_file.pairs == [
        PreferencePair("Name a fruit.", "Apple.", "Carrot."),
        PreferencePair("Name a fruit.", "Apple.", "Carrot.", 8.0, 6.5),
    ]
    assert pair_file.dropped == []


def test_equal_scores_are_a_valid_tie(tmp_path):
    path = write(tmp_path, line(score_chosen=7, score_rejected=7))
    assert read_pairs(path).pairs[0].score_rejected == 7.0


def test_identical_responses_in_a_scored_tie_are_valid(tmp_path):
    # UltraFeedback rates some responses that are word for word the same, with equal scores.
    path = write(
        tmp_path, line(chosen="sarcastic", rejected="sarcastic", score_chosen=7, score_rejected=7)
    )
    assert read_pairs(path).pairs[0].chosen == "sarcastic"


def test_scores_on_the_scale_bounds_are_valid(tmp_path):
    path = write(tmp_path, line(score_chosen=10, score_rejected=1))
    assert len(read_pairs(path, score_scale=(1, 10)).pairs) == 1


def test_utf8_bom_at_file_start(tmp_path):
    path = write(tmp_path, b"\xef\xbb\xbf" + line().encode() + b"\n")
    assert read_pairs(path).pairs[0].prompt == "Name a fruit."


def test_crlf_line_endings(tmp_path):
    path = write(tmp_path, line() + "\r\n" + line(chosen="Pear.") + "\r\n")
    assert [pair.chosen for pair in read_pairs(path).pairs] == ["Apple.", "Pear."]


def test_non_ascii_text(tmp_path):
    texts = {"prompt": "说出一种水果。", "chosen": "苹果 🍎", "rejected": "Crème brûlée, señor"}
    path = write(tmp_path, json.dumps(texts, ensure_ascii=False) + "\n")
    pair = read_pairs(path).pairs[0]
    assert (pair.prompt, pair.chosen, pair.rejected) == tuple(texts.values())


def test_line_separator_inside_a_string_does_not_split_the_line(tmp_path):
    path = write(tmp_path, json.dumps({**GOOD, "chosen": "a\u2028b"}, ensure_ascii=False))
    assert read_pairs(path).pairs[0].chosen == "a\u2028b"


def test_other_keys_are_ignored(tmp_path):
    path = write(tmp_path, line(source_index=17, meta={"model": "x"}))
    assert read_pairs(path).pairs == [PreferencePair(**GOOD)]


# --- drop mode ---------------------------------------------------------------------------------


def test_drop_mode_collects_bad_rows(tmp_path):
    lines = [
        line(),
        "not json",
        line(),
        "",
        line(chosen=""),
        line(score_chosen=1, score_rejected=2),
    ]
    path = write(tmp_path, "\n".join(lines) + "\n")
    pair_file = read_pairs(path, on_invalid="drop")
    assert len(pair_file.pairs) == 2
    assert [row.line for row in pair_file.dropped] == [2, 5, 6]
    assert pair_file.dropped[1] == InvalidRow(5, "field 'chosen' is empty")


def test_drop_mode_still_raises_for_file_faults(tmp_path):
    path = write(tmp_path, b"")
    assert fault(path, on_invalid="drop") == f"{path}: file is empty (no JSON lines)"


def test_drop_mode_raises_when_no_pair_remains(tmp_path):
    path = write(tmp_path, "[]\n" + line(prompt="") + "\n")
    message = fault(path, on_invalid="drop")
    assert message == (
        f"{path}: no valid pair remains: all 2 rows were dropped "
        "(first at line 1: is a list, not a JSON object (expected one object per line))"
    )


def test_unknown_on_invalid_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="on_invalid"):
        read_pairs(write(tmp_path, line()), on_invalid="skip")


# --- conversion and writing --------------------------------------------------------------------


def test_pair_from_row_returns_a_reason_instead_of_raising():
    assert pair_from_row({"prompt": "p", "chosen": "c"}) == (
        "missing field 'rejected' (fields present: chosen, prompt)"
    )
    assert pair_from_row({**GOOD, "score_chosen": 5, "score_rejected": 1}, (0, 4)) == (
        "score_chosen 5 is outside the score scale [0, 4]"
    )


def test_to_dict_leaves_out_missing_scores():
    assert PreferencePair("p", "c", "r").to_dict() == {
        "prompt": "p",
        "chosen": "c",
        "rejected": "r",
    }
    assert PreferencePair("p", "c", "r", 2.0, 1.0).to_dict()["score_rejected"] == 1.0


def test_write_then_read_round_trips(tmp_path):
    pairs = [PreferencePair("问题", "答案 ✓", "错误"), PreferencePair("p", "c", "r", 0.75, 0.25)]
    path = write_pairs(tmp_path / "out" / "pairs.jsonl", pairs)
    assert "答案 ✓" in path.read_text(encoding="utf-8")  # written as is, not \u-escaped
    assert read_pairs(path).pairs == pairs


def test_a_subset_field_is_kept_and_written_back(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(line(subset="chat") + "\n" + line() + "\n", encoding="utf-8")
    pairs = read_pairs(path).pairs
    assert [p.subset for p in pairs] == ["chat", None]
    write_pairs(tmp_path / "out.jsonl", pairs)
    assert read_pairs(tmp_path / "out.jsonl").pairs == pairs


def test_a_subset_that_is_not_a_string(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(line(subset=3) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs.jsonl:1: field 'subset' is a number \(3\)"):
        read_pairs(path)
