import pytest

from srft.data.decontamination import NgramIndex, decontaminate, ngrams, tokens


def words(first: int, last: int) -> str:
    """The text "t<first> t<first+1> ... t<last>" (last included): last - first + 1 tokens."""
    return " ".join(f"t{i}" for i in range(first, last + 1))


# One evaluation text of 40 tokens, t0 .. t39.
EVAL = [words(0, 39)]


def test_tokens_lower_case_and_split_on_whitespace():
    assert tokens("  The CAT\tsat\n\non  the mat. ") == ["the", "cat", "sat", "on", "the", "mat."]


def test_ngrams():
    assert list(ngrams(["a", "b", "c", "d"], 3)) == [("a", "b", "c"), ("b", "c", "d")]
    assert list(ngrams(["a", "b"], 3)) == []


@pytest.mark.parametrize(
    ("n_tokens", "size"),
    [(100, 13), (13, 13), (12, 12), (9, 9), (8, 8), (5, 8)],
)
def test_ngram_size_rule(n_tokens, size):
    # max(min_n, min(n, L)) with n = 13, min_n = 8
    assert NgramIndex([]).ngram_size(n_tokens) == size


def test_long_text_sharing_13_tokens_overlaps():
    # Training text: 5 own tokens, then t20 .. t32 (13 tokens of the evaluation text), then 5 own.
    text = "a b c d e " + words(20, 32) + " v w x y z"
    assert NgramIndex(EVAL).overlap(text) == tuple(words(20, 32).split())


def test_long_text_sharing_only_12_tokens_is_clean():
    # t20 .. t31 is a 12-token run: a 13-gram of this 22-token text cannot fit inside it.
    text = "a b c d e " + words(20, 31) + " v w x y z"
    assert NgramIndex(EVAL).overlap(text) is None


def test_short_text_inside_an_evaluation_text_overlaps_whole():
    # 10 tokens, so the n-gram size is 10: the whole text, which the evaluation text holds.
    assert NgramIndex(EVAL).overlap(words(5, 14)) == tuple(words(5, 14).split())


def test_short_text_must_overlap_whole():
    # 10 tokens of which the first 9 are in the evaluation text: no 10-gram is shared.
    assert NgramIndex(EVAL).overlap(words(5, 13) + " zzz") is None


def test_short_text_whose_pieces_lie_in_different_evaluation_texts_is_clean():
    # Every 8-gram of this 10-token text is in one evaluation text or the other, but no
    # evaluation text holds all 10 tokens in a row.
    index = NgramIndex(["a b c d e f g h i", "b c d e f g h i j"])
    assert index.overlap("a b c d e f g h i j") is None
    assert index.overlap("b c d e f g h i j") == tuple("bcdefghij")


def test_eight_token_text_overlaps():
    assert NgramIndex(EVAL).overlap(words(30, 37)) is not None


def test_a_text_too_short_for_ngrams_overlaps_where_an_evaluation_text_holds_it():
    # 7 tokens, shorter than min_n = 8: compared whole, and t30 .. t36 run in the evaluation text
    assert NgramIndex(EVAL).overlap(words(30, 36)) == tuple(words(30, 36).split())
    # 4 tokens, the fewest compared as a run; 3 are too common a run to tell
    assert NgramIndex(EVAL).overlap(words(30, 33)) is not None
    assert NgramIndex(EVAL).overlap(words(30, 32)) is None
    # the words must run in order
    assert NgramIndex(EVAL).overlap("t30 t31 t33 t32") is None


def test_a_short_text_overlaps_an_evaluation_text_it_equals_up_to_punctuation_and_case():
    index = NgramIndex(["What is 7 + 5?", "Paris"])
    assert index.overlap("what is 7 + 5 ?") == ("what", "is", "7", "+", "5")
    assert index.overlap("What is 7 - 5?") is None
    assert index.overlap("Paris.") == ("paris",)
    assert index.overlap("Paris, France") is None  # two words: compared whole only
    assert index.overlap("is 7") is None
    assert index.overlap("?!") is None  # no words at all


def test_size_follows_the_training_text_not_the_evaluation_text():
    # The 10-token evaluation text lies inside this 20-token training text, but the training
    # text is compared by 13-grams, and the evaluation text has none.
    index = NgramIndex([words(100, 109)])
    assert index.overlap(words(95, 114)) is None


def test_overlap_ignores_case_and_spacing():
    index = NgramIndex(["The quick brown fox jumps over the lazy dog again and again today."])
    text = "the QUICK  brown\nfox jumps over the lazy dog again and again today."
    assert index.overlap(text) == tuple(tokens(text))


def test_custom_sizes():
    index = NgramIndex(["a b c d e"], n=3, min_n=2)
    assert index.overlap("x c d e y") == ("c", "d", "e")  # 5 tokens: size 3
    assert index.overlap("x b c y") is None  # 4 tokens: size 3, and "b c" is only 2 long
    assert index.overlap("d e") == ("d", "e")  # 2 tokens: size 2, the whole text
    assert index.overlap("e") is None  # shorter than min_n = 2


def test_index_rejects_min_n_above_n():
    with pytest.raises(ValueError, match="min_n"):
        NgramIndex([], n=8, min_n=13)


def test_decontaminate_scores_the_clean_fraction():
    examples = [
        ("prompt one", "clean answer", "another clean answer"),  # clean
        ("a prompt", "fine", "x " + words(0, 12)),  # rejected holds the 13-gram t0 .. t12
        (words(10, 17), "ok", "ok"),  # prompt of 8 tokens, all in the evaluation text
        ("a prompt", "fine", words(0, 2)),  # 3 tokens in a run of it: too short to tell
    ]
    result = decontaminate(examples, EVAL)
    # 2 of 4 examples contaminated: score = 1 - 2/4 = 0.5
    assert result.score == 0.5
    assert result.n_examples == 4
    assert result.contaminated == [1, 2]
    assert result.overlaps == {1: words(0, 12), 2: words(10, 17)}


def test_decontaminate_with_no_examples_is_clean():
    result = decontaminate([], EVAL)
    assert (result.score, result.n_examples, result.contaminated) == (1.0, 0, [])


def test_decontaminate_counts_a_repeated_text_in_every_example():
    result = decontaminate([(words(0, 12),), ("clean",), (words(0, 12),)], EVAL)
    # 2 of 3 contaminated: 1 - 2/3 = 1/3
    assert result.score == pytest.approx(1 / 3)
    assert result.contaminated == [0, 2]


def test_decontaminate_rejects_a_bare_string_example():
    with pytest.raises(TypeError, match="tuple of texts"):
        decontaminate(["just a prompt"], EVAL)


def test_result_to_dict():
    result = decontaminate([(words(0, 12),)], EVAL)
    assert result.to_dict() == {
        "score": 0.0,
        "n_examples": 1,
        "contaminated": [0],
        "overlaps": {0: words(0, 12)},
    }
