"""N-gram overlap between training examples and evaluation items.

**decontamination**: fraction of training examples (prompt and responses) sharing no n-gram of
`n` tokens (default 13, shorter texts use their length, minimum 8) with any evaluation item
(benchmarks, win-rate prompts, held-out test pairs).

Tokens are the text lower-cased and split on whitespace. A training text of L tokens is compared
with n-grams of size `max(min_n, min(n, L))`. A text too short for an n-gram (under `min_n`
tokens) is compared whole, with punctuation dropped: it overlaps an evaluation text that it
equals, or, from `MIN_SHORT_TOKENS` tokens on, that holds it as a run of words (a short text
of one or two words, a number or a name, occurs in too many texts to tell). An example (a tuple
of texts, e.g. prompt, chosen, rejected) is contaminated when any of its texts overlaps any
evaluation text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

NGRAM_TOKENS = 13  # the n-gram size for texts at least this long
MIN_NGRAM_TOKENS = 8  # the smallest n-gram size; shorter texts are compared whole
MIN_SHORT_TOKENS = 4  # a short text this long overlaps an evaluation text that holds it
#: the punctuation of sentences (not of formulas: "7 + 5" and "7 - 5" differ) that short texts
#: are compared without
SENTENCE_PUNCTUATION = ".,;:!?\"'`()[]{}\u201c\u201d\u2018\u2019\u00ab\u00bb"


def tokens(text: str) -> list[str]:
    """The text lower-cased and split on whitespace."""
    return text.lower().split()


def words_of(text: str) -> tuple[str, ...]:
    """The text's tokens with the sentence punctuation around each dropped (and tokens of it
    only left out): how a text too short for n-grams is compared."""
    stripped = (token.strip(SENTENCE_PUNCTUATION) for token in tokens(text))
    return tuple(word for word in stripped if word)


def ngrams(words: Sequence[str], size: int) -> Iterable[tuple[str, ...]]:
    """Every run of `size` consecutive words, in order; nothing when there are fewer words."""
    return zip(*(words[start:] for start in range(size)), strict=False)


class NgramIndex:
    """The evaluation texts' n-grams: one set per size from `min_n` to `n` tokens.

    The set of size `n` is built at once. A smaller size serves only training texts shorter
    than `n` tokens, so its set is built the first time such a text may need it.
    """

    def __init__(
        self, eval_texts: Iterable[str], n: int = NGRAM_TOKENS, min_n: int = MIN_NGRAM_TOKENS
    ) -> None:
        if not 1 <= min_n <= n:
            raise ValueError(f"need 1 <= min_n <= n, got min_n={min_n}, n={n}")
        self.n = n
        self.min_n = min_n
        eval_texts = list(eval_texts)
        self._eval_tokens = [tokens(text) for text in eval_texts]
        self._eval_words = [words_of(text) for text in eval_texts]
        self._whole = set(self._eval_words)
        self._by_size: dict[int, set[tuple[str, ...]]] = {}
        self._word_runs: dict[int, set[tuple[str, ...]]] = {}
        self.ngram_set(n)

    def ngram_size(self, n_tokens: int) -> int:
        """The n-gram size for a training text of `n_tokens` tokens: max(min_n, min(n, L))."""
        return max(self.min_n, min(self.n, n_tokens))

    def ngram_set(self, size: int) -> set[tuple[str, ...]]:
        """Every n-gram of `size` tokens (`min_n` to `n`) in the evaluation texts."""
        if not self.min_n <= size <= self.n:
            raise ValueError(f"size must be in [{self.min_n}, {self.n}], got {size}")
        if size not in self._by_size:
            grams: set[tuple[str, ...]] = set()
            for words in self._eval_tokens:
                grams.update(ngrams(words, size))
            self._by_size[size] = grams
        return self._by_size[size]

    def overlap(self, text: str) -> tuple[str, ...] | None:
        """The first n-gram of `text` that some evaluation text also holds (a short text: the
        text's words), or None."""
        words = tokens(text)
        if len(words) < self.min_n:
            return self._short_overlap(words_of(text))
        size = self.ngram_size(len(words))
        if size < self.n and not self._may_occur_whole(words):
            return None
        # filter() with the set's own __contains__ scans in C, where most of the time goes.
        return next(filter(self.ngram_set(size).__contains__, ngrams(words, size)), None)

    def _short_overlap(self, words: tuple[str, ...]) -> tuple[str, ...] | None:
        """`words` when an evaluation text is just these words, or holds them in a run and
        they are at least MIN_SHORT_TOKENS; else None."""
        if not words:
            return None
        if words in self._whole:
            return words
        if len(words) < MIN_SHORT_TOKENS:
            return None
        size = len(words)
        if size not in self._word_runs:
            runs: set[tuple[str, ...]] = set()
            for eval_words in self._eval_words:
                runs.update(ngrams(eval_words, size))
            self._word_runs[size] = runs
        return words if words in self._word_runs[size] else None

    def _may_occur_whole(self, words: list[str]) -> bool:
        """False when `words` surely occur in no evaluation text, as a whole and in order.

        A text shorter than `n` tokens is its own single n-gram; if it occurs in an evaluation
        text, so does each of its `min_n`-grams. Testing those first spares building the set of
        the text's own size for almost every short text.
        """
        return all(map(self.ngram_set(self.min_n).__contains__, ngrams(words, self.min_n)))


@dataclass
class DecontaminationResult:
    """Which training examples overlap the evaluation texts."""

    score: float  # fraction of examples that are clean; 1.0 when there are no examples
    n_examples: int
    contaminated: list[int]  # indices of contaminated examples, ascending
    overlaps: dict[int, str]  # example index -> the first shared n-gram, joined by spaces

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def decontaminate(
    examples: Sequence[Sequence[str]],
    eval_texts: Iterable[str],
    *,
    n: int = NGRAM_TOKENS,
    min_n: int = MIN_NGRAM_TOKENS,
) -> DecontaminationResult:
    """Find the training examples that share an n-gram with any evaluation text.

    Each example is a sequence of texts (e.g. prompt, chosen, rejected); it is contaminated
    when any of its texts overlaps. The score is the **decontamination** fraction defined above.
    """
    index = NgramIndex(eval_texts, n=n, min_n=min_n)
    # Prompts recur across the pairs made from them, and responses across pairs, so each
    # distinct text is looked up once.
    overlap_of: dict[str, tuple[str, ...] | None] = {}
    contaminated: list[int] = []
    overlaps: dict[int, str] = {}
    for position, example in enumerate(examples):
        if isinstance(example, str):
            raise TypeError(f"example {position} is a str; pass a tuple of texts, e.g. (prompt,)")
        for text in example:
            if text not in overlap_of:
                overlap_of[text] = index.overlap(text)
            gram = overlap_of[text]
            if gram is not None:
                contaminated.append(position)
                overlaps[position] = " ".join(gram)
                break
    n_examples = len(examples)
    score = 1.0 - len(contaminated) / n_examples if n_examples else 1.0
    return DecontaminationResult(score, n_examples, contaminated, overlaps)
