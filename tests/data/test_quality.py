import json
from pathlib import Path

import pytest

from srft.data.pairs import PreferencePair, write_pairs
from srft.data.quality import (
    normalise_score,
    preference_gap,
    validate_preference_pairs,
)

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
ULTRAFEEDBACK_200 = SHARED_DATA / "ultrafeedback" / "ultrafeedback_binarized_200.jsonl"

# Five pairs on the scale (0, 1), so a normalised score is the score itself.
#   gaps of the scored pairs: 0.9 - 0.6 = 0.3, 0.5 - 0.5 = 0 (a tie), 0.8 - 0.2 = 0.6, and
#   0.3 again for the repeat of the first pair; the unscored pair is skipped.
#   preference gap = (0.3 + 0 + 0.6 + 0.3) / 4 = 1.2 / 4 = 0.3
#   chosen words: 1 + 1 + 2 + 1 + 1 = 6 over 5 pairs = 1.2; rejected words: 5 / 5 = 1.0
PAIRS = [
    PreferencePair("p1", "a", "b", 0.9, 0.6),
    PreferencePair("p1", "c", "d", 0.5, 0.5),
    PreferencePair("p2", "e f", "g", 0.8, 0.2),
    PreferencePair("p1", "a", "b", 0.9, 0.6),
    PreferencePair("p3", "h", "i"),
]


def test_normalise_score():
    assert normalise_score(7, (1, 10)) == pytest.approx(2 / 3)  # (7 - 1) / (10 - 1) = 6 / 9
    assert normalise_score(1, (1, 10)) == 0.0
    assert normalise_score(10, (1, 10)) == 1.0
    assert normalise_score(0.25, (0, 1)) == 0.25


def test_normalise_score_rejects_an_empty_scale():
    with pytest.raises(ValueError, match="max > min"):
        normalise_score(5, (5, 5))


def test_preference_gap_on_a_one_to_ten_scale():
    pairs = [
        PreferencePair("p", "c", "r", 10, 1),  # (10 - 1) / 9 = 1
        PreferencePair("p", "c", "r", 7, 4),  # (7 - 4) / 9 = 1/3
        PreferencePair("p", "c", "r", 5, 5),  # 0
        PreferencePair("p", "c", "r"),  # no scores: skipped
    ]
    # (1 + 1/3 + 0) / 3 = 4/9
    assert preference_gap(pairs, (1, 10)) == pytest.approx(4 / 9)


def test_preference_gap_is_none_without_scores():
    assert preference_gap([PreferencePair("p", "c", "r")], (0, 1)) is None
    assert preference_gap([], (0, 1)) is None


def test_report_of_pairs_in_memory():
    report = validate_preference_pairs(PAIRS, min_pairs=5)
    assert report.path is None
    assert report.n_pairs == 5
    assert report.n_unique_prompts == 3
    assert report.n_scored == 4
    assert report.preference_gap == pytest.approx(0.3)
    assert report.n_ties == 1
    assert report.n_duplicate_pairs == 1
    assert report.mean_chosen_words == pytest.approx(1.2)
    assert report.mean_rejected_words == 1.0
    assert report.n_dropped == 0
    assert (report.gap_passed, report.count_passed, report.passed) == (True, True, True)


def test_report_fails_on_count():
    report = validate_preference_pairs(PAIRS, min_pairs=6)
    assert (report.gap_passed, report.count_passed, report.passed) == (True, False, False)


def test_report_fails_on_gap():
    report = validate_preference_pairs(PAIRS, gap_threshold=0.31, min_pairs=5)
    assert (report.gap_passed, report.count_passed, report.passed) == (False, True, False)


def test_gap_not_measurable_fails():
    report = validate_preference_pairs([PreferencePair("p", "c", "r")], min_pairs=1)
    assert report.preference_gap is None
    assert (report.gap_passed, report.count_passed, report.passed) == (None, True, False)
    assert "❌ preference gap: not measurable (no pair carries scores)" in report.format()


def test_report_of_a_file_uses_its_scale_and_counts_dropped_rows(tmp_path):
    path = write_pairs(tmp_path / "pairs.jsonl", [PreferencePair("p", "c", "r", 8, 5)])
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"prompt": "p", "chosen": "c"}) + "\n")
    report = validate_preference_pairs(path, score_scale=(1, 10), min_pairs=1, on_invalid="drop")
    assert report.path == str(path)
    assert report.n_dropped == 1
    assert report.preference_gap == pytest.approx(1 / 3)  # (8 - 5) / (10 - 1) = 3 / 9


def test_format_marks_each_check():
    text = validate_preference_pairs(PAIRS, min_pairs=6).format()
    assert "✅ preference gap: 0.300 >= 0.15 (4 of 5 pairs scored)" in text
    assert "❌ pair count: 5 < 6" in text
    assert text.splitlines()[0] == "Preference pairs: (in memory)"
    assert text.splitlines()[-1].strip() == "failed"


def test_to_dict_holds_every_field():
    row = validate_preference_pairs(PAIRS, min_pairs=5).to_dict()
    assert row["n_ties"] == 1
    assert row["passed"] is True
    assert json.loads(json.dumps(row)) == row


@pytest.mark.skipif(not ULTRAFEEDBACK_200.exists(), reason="shared/data is not beside the repo")
def test_ultrafeedback_sample():
    report = validate_preference_pairs(ULTRAFEEDBACK_200, score_scale=(1, 10), min_pairs=200)
    assert report.n_pairs == 200
    assert report.n_dropped == 0
    assert report.n_ties == 29
    assert 0 < report.preference_gap < 1
    assert report.count_passed
