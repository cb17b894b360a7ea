import json
from pathlib import Path

import pytest

from srft.data.hub import is_hub_id
from srft.data.pair_formats import flatten_row, split_dialogues
from srft.data.pairs import read_pairs
from srft.data.quality import preference_gap
from srft.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
HH_HELPFUL = SHARED_DATA / "hh_rlhf" / "helpful_base_test_nonholdout.jsonl"
ULTRAFEEDBACK = SHARED_DATA / "ultrafeedback" / "ultrafeedback_binarized_200.jsonl"
needs_shared = pytest.mark.skipif(
    not HH_HELPFUL.exists(), reason="shared/data is not beside the repo"
)


def test_split_dialogues_takes_the_shared_turns_as_the_prompt():
    chosen = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: a joke?\n\nAssistant: Sure, here is one."
    rejected = "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: a joke?\n\nAssistant: Sure. No."
    prompt, good, bad = split_dialogues(chosen, rejected)
    assert prompt == "Human: hi\n\nAssistant: hello\n\nHuman: a joke?\n\nAssistant:"
    assert (good, bad) == ("Sure, here is one.", "Sure. No.")


def test_split_dialogues_needs_a_shared_assistant_turn():
    assert "share no dialogue" in split_dialogues("\n\nHuman: a", "\n\nHuman: b")


def test_message_lists_take_the_last_assistant_message():
    row = {
        "prompt": "2+2?",
        "chosen": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}],
        "rejected": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "5"}],
        "score_chosen": 9.0,
        "score_rejected": 2.0,
    }
    flat = flatten_row(row)
    assert (flat["prompt"], flat["chosen"], flat["rejected"]) == ("2+2?", "4", "5")
    assert flat["score_chosen"] == 9.0


def test_message_lists_without_a_prompt_render_the_conversation():
    turns = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye?"},
    ]
    row = {
        "chosen": [*turns, {"role": "assistant", "content": "bye"}],
        "rejected": [*turns, {"role": "assistant", "content": "no"}],
    }
    flat = flatten_row(row)
    assert flat["prompt"] == "Human: hi\n\nAssistant: hello\n\nHuman: bye?\n\nAssistant:"
    assert (flat["chosen"], flat["rejected"]) == ("bye", "no")


@pytest.mark.parametrize(
    ("value", "fault"),
    [
        ([], "must be a string or a non-empty list of messages"),
        ([{"role": "user"}], "message 0 is not an object with string 'role' and 'content'"),
        ([{"role": "user", "content": "x"}], "has no assistant message"),
    ],
)
def test_bad_message_lists_are_named(value, fault):
    assert fault in flatten_row({"prompt": "p", "chosen": value, "rejected": "r"})


def test_a_message_list_file_reads_with_line_numbers(tmp_path):
    good = {
        "prompt": "q",
        "chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
        "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}],
    }
    bad = {**good, "rejected": [{"role": "user", "content": "q"}]}
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs.jsonl:2: field 'rejected': the message list has"):
        read_pairs(path)
    assert len(read_pairs(path, on_invalid="drop").pairs) == 1


def test_parquet_files_read_like_jsonl(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {
            "prompt": "p1",
            "chosen": "a",
            "rejected": "b",
            "score_chosen": 8.0,
            "score_rejected": 3.0,
        },
        {
            "prompt": "p2",
            "chosen": "c",
            "rejected": "c",
            "score_chosen": 5.0,
            "score_rejected": 6.0,
        },
    ]
    path = tmp_path / "pairs.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(DataError, match=r"pairs.parquet:2: "):
        read_pairs(path, score_scale=(1, 10))
    pairs = read_pairs(path, score_scale=(1, 10), on_invalid="drop").pairs
    assert [p.prompt for p in pairs] == ["p1"]


def test_a_corrupt_parquet_file_is_one_line(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match=r"broken.parquet: not a readable parquet file"):
        read_pairs(path)


@pytest.mark.parametrize(
    ("text", "hub"),
    [
        ("Anthropic/hh-rlhf", True),
        ("trl-lib/ultrafeedback_binarized:test", True),
        ("data/pairs.jsonl", False),
        ("pairs", False),
        ("./org/name", False),
        ("a/b/c", False),
    ],
)
def test_hub_ids_are_told_from_file_names(text, hub):
    assert is_hub_id(text) is hub


def test_an_unreachable_hub_dataset_is_one_line(monkeypatch):
    import datasets

    def offline(name, split):
        raise ConnectionError(f"Couldn't reach '{name}' on the Hub (LocalEntryNotFoundError)\nmore")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError) as caught:
        read_pairs("srft-no-such/dataset")
    assert str(caught.value) == (
        "srft-no-such/dataset: cannot load the dataset from the Hugging Face Hub "
        "(Couldn't reach 'srft-no-such/dataset' on the Hub (LocalEntryNotFoundError))"
    )


def test_a_hub_split_is_taken_from_the_id(monkeypatch):
    import datasets

    asked = []

    def fake(name, split):
        asked.append((name, split))
        return [{"prompt": "p", "chosen": "a", "rejected": "b"}]

    monkeypatch.setattr(datasets, "load_dataset", fake)
    assert len(read_pairs("org/name:validation").pairs) == 1
    assert len(read_pairs("org/name", split="test").pairs) == 1
    assert asked == [("org/name", "validation"), ("org/name", "test")]


@needs_shared
def test_hh_rlhf_dialogues_become_prompt_and_responses():
    # Quirks of the original data: two final replies are empty, and in one row (line 1066)
    # chosen == rejected.
    with pytest.raises(DataError, match=r"helpful_base_test_nonholdout.jsonl:189: field 'rejec"):
        read_pairs(HH_HELPFUL)
    found = read_pairs(HH_HELPFUL, on_invalid="drop")
    assert (len(found.pairs), [d.line for d in found.dropped]) == (1234, [189, 970, 1066])
    for pair in found.pairs:
        assert pair.prompt.startswith("Human:")
        assert pair.prompt.endswith("\n\nAssistant:")
        assert "\n\nHuman:" not in pair.chosen and "\n\nHuman:" not in pair.rejected
    assert preference_gap(found.pairs, (0, 1)) is None  # HH-RLHF carries no scores


@needs_shared
def test_ultrafeedback_scores_on_one_to_ten_give_the_gap():
    pairs = read_pairs(ULTRAFEEDBACK, score_scale=(1, 10)).pairs
    assert len(pairs) == 200
    ties = sum(p.score_chosen == p.score_rejected for p in pairs)
    assert ties == 29
    gap = preference_gap(pairs, (1, 10))
    expected = sum((p.score_chosen - p.score_rejected) / 9 for p in pairs) / 200
    assert gap == pytest.approx(expected)
