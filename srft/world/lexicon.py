"""The fixed vocabulary of the embedded world.

Words never depend on the seed, so the gold judge is a pure function of (prompt, response);
the seed only decides which prompts, demonstrations and labels a run sees.
"""

CATEGORIES: dict[str, tuple[str, ...]] = {
    "animals": ("cat", "dog", "cow", "horse", "sheep", "goat", "fox", "wolf", "bear", "mouse"),
    "colors": (
        "red",
        "blue",
        "green",
        "yellow",
        "purple",
        "orange",
        "black",
        "white",
        "pink",
        "gray",
    ),
    "fruits": (
        "apple",
        "pear",
        "plum",
        "grape",
        "lemon",
        "mango",
        "peach",
        "cherry",
        "melon",
        "lime",
    ),
    "tools": (
        "hammer",
        "saw",
        "drill",
        "wrench",
        "chisel",
        "pliers",
        "shovel",
        "rake",
        "axe",
        "file",
    ),
    "countries": (
        "france",
        "spain",
        "italy",
        "peru",
        "chile",
        "japan",
        "china",
        "india",
        "egypt",
        "kenya",
    ),
    "instruments": (
        "piano",
        "violin",
        "flute",
        "drum",
        "guitar",
        "harp",
        "cello",
        "trumpet",
        "oboe",
        "banjo",
    ),
}

CATEGORY_OF: dict[str, str] = {word: cat for cat, words in CATEGORIES.items() for word in words}

COUNT_WORDS: tuple[str, ...] = ("one", "two", "three", "four")

FILLERS: tuple[str, ...] = ("um", "uh", "hmm", "well")

USERS: tuple[str, ...] = (
    "ana",
    "ben",
    "cara",
    "dan",
    "eva",
    "finn",
    "gus",
    "hana",
    "ivan",
    "jo",
    "kim",
    "leo",
    "mia",
    "ned",
    "olga",
    "pia",
    "quin",
    "rosa",
    "sam",
    "tia",
    "uma",
    "vic",
    "wes",
    "xia",
    "yuri",
    "zoe",
    "abe",
    "bea",
    "cole",
    "dora",
    "eli",
    "fay",
    "gil",
    "hal",
    "ida",
    "jay",
    "kai",
    "lou",
    "max",
    "nia",
)

LIST_TEMPLATES: tuple[str, ...] = (
    "list {count} {category}",
    "name {count} {category} please",
    "give me {count} {category}",
    "i need {count} {category}",
)

SYMBOLS: tuple[str, ...] = tuple("abcdefghijklmnop")

PUNCTUATION: tuple[str, ...] = (":", ",", ".", "?")

KEYWORDS: tuple[str, ...] = (
    "says",
    "answer",
    "sure",
    "what",
    "is",
    "the",
    "last",
    "of",
    "comes",
    "after",
)


def vocabulary() -> list[str]:
    """Every word the world's texts use, in a fixed order."""
    words: list[str] = []
    for group in (
        KEYWORDS,
        PUNCTUATION,
        COUNT_WORDS,
        tuple(CATEGORIES),
        tuple(CATEGORY_OF),
        FILLERS,
        USERS,
        SYMBOLS,
        *(tuple(t.format(count="", category="").split()) for t in LIST_TEMPLATES),
    ):
        for word in group:
            if word not in words:
                words.append(word)
    return words
