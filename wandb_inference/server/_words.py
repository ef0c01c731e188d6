"""Deterministic English-ish text, one token (piece) at a time.

Everything here is pure: a `random.Random` seeded from a hash of what the reply depends on
(model, messages, seed, choice index) drives small sentence templates, so the same request
always gets the same words. A piece is what one streamed delta carries: a word with its
leading space and any punctuation attached, the way BPE tokens look.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from typing import Final

__all__ = ["Words", "rng_for", "split_text", "topic_words"]

_DETERMINERS: Final = ("the", "a", "this", "every", "each", "our", "that", "one")
_ADJECTIVES: Final = (
    "small", "clear", "quiet", "bright", "careful", "simple", "early", "useful", "steady",
    "gentle", "modern", "open", "quick", "patient", "warm", "honest", "curious", "broad",
    "light", "calm", "hidden", "shared", "local", "final",
)  # fmt: skip
_NOUNS: Final = (
    "model", "river", "answer", "garden", "signal", "request", "idea", "window", "pattern",
    "record", "question", "system", "story", "market", "teacher", "engine", "language",
    "bridge", "method", "result", "network", "planet", "library", "voice", "morning", "token",
    "stream", "field", "letter", "team", "harbor", "lantern", "map", "recipe", "journey",
)  # fmt: skip
_VERBS: Final = (
    "reads", "builds", "follows", "shapes", "carries", "explains", "finds", "holds",
    "measures", "improves", "connects", "describes", "returns", "keeps", "shows", "checks",
    "brings", "opens", "guides", "tracks", "answers", "gathers",
)  # fmt: skip
_ADVERBS: Final = ("quietly", "often", "carefully", "always", "rarely", "simply", "usually", "clearly")
_PREPOSITIONS: Final = ("about", "near", "with", "across", "under", "beyond", "through", "after", "inside")
_CONJUNCTIONS: Final = ("and", "but", "so", "while")
# Multi-byte UTF-8 in every width (2, 3 and 4 bytes), for tests of decoders cut mid-character.
_NON_ASCII_NOUNS: Final = (
    "café", "résumé", "façade", "jalapeño", "piñata", "smörgåsbord", "naïveté", "Zürich",
    "東京", "日本", "こんにちは", "crème", "fiancé", "🚀", "ünïcode",
)  # fmt: skip
_NON_ASCII_ADJECTIVES: Final = ("naïve", "très", "bien-aimé", "日本の", "süß", "déjà-vu")
_STOP_WORDS: Final = (
    "about", "after", "again", "also", "because", "been", "before", "being", "could", "does",
    "from", "have", "here", "into", "just", "like", "make", "many", "more", "most", "much",
    "only", "other", "over", "some", "such", "than", "that", "their", "them", "then", "there",
    "these", "they", "this", "those", "very", "what", "when", "where", "which", "while",
    "will", "with", "would", "your", "please", "tell", "write", "short", "give",
)  # fmt: skip
_STOP_TOPICS: Final = frozenset(_STOP_WORDS)


def rng_for(*parts: object) -> random.Random:
    """A PRNG seeded from a stable hash of `parts` (JSON-encoded, keys sorted).

    Args:
        *parts: what the output depends on (model, messages, seed, index, purpose).

    Returns:
        A `random.Random` that yields the same sequence for the same parts, on every
        platform and Python version (`random.Random` with an int seed is stable).
    """
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    digest = hashlib.sha256(text.encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


def topic_words(text: str, limit: int = 8) -> list[str]:
    """Content words of a prompt (4+ letters, not stop words), first occurrence order.

    Args:
        text: the prompt text.
        limit: at most this many words.

    Returns:
        Lower-case words the reply may mention, so it reads as being about the prompt.
    """
    seen: list[str] = []
    for word in re.findall(r"[^\W\d_]{4,}", text.lower()):
        if word not in _STOP_TOPICS and word not in seen:
            seen.append(word)
            if len(seen) == limit:
                break
    return seen


def split_text(rng: random.Random, text: str, low: int = 3, high: int = 9) -> list[str]:
    """Cut text into pieces of `low`..`high` characters: tokens of JSON or arguments.

    Args:
        rng: the reply's PRNG.
        text: what to cut.
        low: the shortest piece.
        high: the longest piece.

    Returns:
        Pieces whose concatenation is `text` (one empty piece for empty text).
    """
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + rng.randint(low, high))
        pieces.append(text[start:end])
        start = end
    return pieces or [""]


class Words:
    """Sentence-template prose from one PRNG.

    Args:
        rng: the PRNG; the only source of variation.
        topic: words from the prompt, used as nouns now and then.
        non_ascii: mix in words with multi-byte UTF-8 characters (é, 日本, 🚀).
    """

    def __init__(self, rng: random.Random, *, topic: Sequence[str] = (), non_ascii: bool = False) -> None:
        self._rng = rng
        self._topic = tuple(topic)
        self._non_ascii = non_ascii

    def word(self) -> str:
        """One lower-case noun or adjective (for JSON strings and object keys)."""
        return self._noun() if self._rng.random() < 0.6 else self._adjective()

    def phrase(self, low: int = 2, high: int = 5) -> str:
        """A few words separated by spaces, no punctuation."""
        return " ".join(self.word() for _ in range(self._rng.randint(low, high)))

    def sentence(self) -> list[str]:
        """One sentence as words; the first capitalised, the last ending in a period."""
        words = self._clause()
        if self._rng.random() < 0.3:
            words[-1] += ","
            words += [self._rng.choice(_CONJUNCTIONS), *self._clause()]
        words[0] = words[0][:1].upper() + words[0][1:]
        words[-1] += "."
        return words

    def pieces(self, at_least: int, opener: Sequence[str] = ()) -> list[str]:
        """Whole sentences until there are at least `at_least` pieces.

        Args:
            at_least: the minimum number of pieces.
            opener: words to start with (e.g. "Okay, let me think.").

        Returns:
            Pieces: the first word bare, later ones with a leading space.
        """
        words = list(opener)
        while len(words) < at_least:
            words += self.sentence()
        return [w if i == 0 else " " + w for i, w in enumerate(words)]

    def _noun(self) -> str:
        roll = self._rng.random()
        if self._non_ascii and roll < 0.4:
            return self._rng.choice(_NON_ASCII_NOUNS)
        if self._topic and roll > 0.7:
            return self._rng.choice(self._topic)
        return self._rng.choice(_NOUNS)

    def _adjective(self) -> str:
        if self._non_ascii and self._rng.random() < 0.4:
            return self._rng.choice(_NON_ASCII_ADJECTIVES)
        return self._rng.choice(_ADJECTIVES)

    def _clause(self) -> list[str]:
        rng = self._rng
        words = [rng.choice(_DETERMINERS)]
        if rng.random() < 0.5:
            words.append(self._adjective())
        words.append(self._noun())
        if rng.random() < 0.25:
            words.append(rng.choice(_ADVERBS))
        words += [rng.choice(_VERBS), rng.choice(_DETERMINERS)]
        if rng.random() < 0.5:
            words.append(self._adjective())
        words.append(self._noun())
        if rng.random() < 0.4:
            words += [rng.choice(_PREPOSITIONS), "the", self._noun()]
        return words
