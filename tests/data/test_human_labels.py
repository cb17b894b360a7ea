"""Human labels as an annotator (srft/data/human_labels.py): the labels file, the join by id,
hybrid annotation and the humans' and the AI's agreement, worked out by hand."""

import pytest

from srft.data.human_labels import HumanLabels, read_labels, response_id
from srft.errors import DataError, SrftError


def write(tmp_path, text: str):
    path = tmp_path / "labels.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_response_id_hashes_the_prompt_and_the_response():
    assert response_id("p", "r") == response_id("p", "r")
    assert response_id("p", "r") != response_id("p", "r.") != response_id("p ", "r")
    assert len(response_id("p", "r")) == 16


def test_labels_are_read_by_text_or_by_id(tmp_path):
    known = response_id("q", "b")
    path = write(
        tmp_path,
        '{"prompt": "q", "response": "a", "score": 0.9}\n\n{"id": "' + known + '", "score": 2}\n',
    )
    assert read_labels(path) == {response_id("q", "a"): 0.9, known: 2.0}


@pytest.mark.parametrize(
    ("line", "seen"),
    [
        ('{"prompt": "q", "response": "a"}', "'score' must be a finite number, got None"),
        ('{"prompt": "q", "response": "a", "score": "1"}', "got '1'"),
        ('{"prompt": "q", "response": "a", "score": NaN}', "got nan"),
        ('{"prompt": "q", "score": 1}', "expected 'id', or 'prompt' and 'response'"),
        ("[1, 2]", "expected a JSON object, got list"),
        ("{oops", "not valid JSON"),
    ],
)
def test_a_bad_row_names_the_file_and_line(tmp_path, line, seen):
    path = write(tmp_path, '{"id": "x", "score": 1}\n' + line + "\n")
    with pytest.raises(DataError) as caught:
        read_labels(path)
    assert str(caught.value).startswith(f"{path}:2: ")
    assert seen in str(caught.value)


def test_an_empty_or_missing_labels_file_is_refused(tmp_path):
    with pytest.raises(DataError, match="no labels"):
        read_labels(write(tmp_path, "\n"))
    with pytest.raises(DataError, match="no such file"):
        read_labels(tmp_path / "none.jsonl")


def labels_of(*rows: tuple[str, str, float]) -> dict[str, float]:
    return {response_id(p, r): s for p, r, s in rows}


def test_human_labels_answer_for_every_labelled_response():
    labels = HumanLabels(labels_of(("q", "a", 1.0), ("q", "b", 0.0)), "labels.jsonl")
    assert labels(["q", "q"], ["b", "a"]) == [0.0, 1.0]
    assert (labels.by_human, labels.by_ai) == (2, 0)


def test_a_response_no_human_labelled_stops_the_run_unless_hybrid():
    labels = HumanLabels(labels_of(("q", "a", 1.0)), "labels.jsonl")
    with pytest.raises(SrftError) as caught:
        labels(["q", "q"], ["a", "c"])
    message = str(caught.value)
    assert message.startswith("annotation.labels_file: labels.jsonl labels 1 of the 2 responses")
    assert response_id("q", "c") in message and "annotation.hybrid: true" in message


def test_hybrid_labels_fill_in_with_the_ai_and_measure_agreement():
    # Humans label a, b, c of prompt q (1, 0.5, 0) and nothing else; the AI scores by length.
    labels = HumanLabels(
        labels_of(("q", "aaaa", 1.0), ("q", "bb", 0.5), ("q", "c", 0.0), ("r", "x", 1.0)),
        "labels.jsonl",
        fallback=lambda prompts, responses: [float(len(r)) for r in responses],
    )
    scores = labels(["q", "q", "q", "q", "r"], ["aaaa", "bb", "c", "dddddd", "x"])
    assert scores == [1.0, 0.5, 0.0, 6.0, 1.0]  # "dddddd": the AI's 6 letters
    assert (labels.by_human, labels.by_ai) == (4, 1)
    # the humans order 3 pairs of q (a>b, a>c, b>c), the AI orders them alike: 3 of 3;
    # r has one labelled response: no pair
    assert (labels.agreed, labels.ordered) == (3.0, 3.0)


def test_agreement_counts_an_ai_tie_half_and_skips_human_ties():
    labels = HumanLabels(
        labels_of(("q", "a", 1.0), ("q", "b", 0.0), ("q", "c", 0.0)),
        "labels.jsonl",
        fallback=lambda prompts, responses: [0.3, 0.3, 0.9],
    )
    labels(["q", "q", "q"], ["a", "b", "c"])
    # a>b (AI tie: 0.5), a>c (AI says c: 0), b=c for humans (left out)
    assert (labels.agreed, labels.ordered) == (0.5, 2.0)
