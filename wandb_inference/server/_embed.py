"""Deterministic embeddings that behave a little like real ones.

A text's vector is the normalised sum of pseudo-random vectors, one per feature: each
lower-cased word and each character trigram. Texts that share words or spelling therefore
point in similar directions (cosine > 0), unrelated texts are nearly orthogonal, and the
same text always gets the same vector. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
import re
import struct
from array import array

__all__ = ["embed", "encode_base64", "truncate"]

_WORD = re.compile(r"\w+")


@functools.lru_cache(maxsize=8192)
def _feature_vector(feature: str, dimensions: int) -> tuple[float, ...]:
    # SHAKE-256 gives as many pseudo-random bytes as asked for, fast; read them as int16.
    raw = hashlib.shake_256(f"{dimensions}:{feature}".encode()).digest(2 * dimensions)
    values = array("h")
    values.frombytes(raw)
    return tuple(v / 32768.0 for v in values)


def _features(text: str) -> list[tuple[str, float]]:
    lowered = text.lower()
    words = _WORD.findall(lowered)
    features = [(f"w:{w}", 1.0) for w in words]
    squeezed = f" {' '.join(words)} "
    features += [(f"t:{squeezed[i : i + 3]}", 0.35) for i in range(len(squeezed) - 2)]
    # Texts without word characters (punctuation, emoji, "") still get their own vector.
    return features or [(f"x:{text}", 1.0)]


def embed(text: str, dimensions: int) -> list[float]:
    """A unit vector for `text`.

    Args:
        text: the input text.
        dimensions: the model's native vector size.

    Returns:
        `dimensions` floats with Euclidean norm 1.
    """
    total = [0.0] * dimensions
    for feature, weight in _features(text):
        vector = _feature_vector(feature, dimensions)
        total = [t + weight * v for t, v in zip(total, vector, strict=True)]
    return _normalise(total)


def truncate(vector: list[float], dimensions: int) -> list[float]:
    """The first `dimensions` components, renormalised (Matryoshka-style `dimensions`).

    Args:
        vector: a unit vector.
        dimensions: how many components to keep.

    Returns:
        A unit vector of length `dimensions`.
    """
    return _normalise(vector[:dimensions])


def encode_base64(vector: list[float]) -> str:
    """Base64 of the little-endian float32 bytes, as OpenAI's `encoding_format: base64`.

    Args:
        vector: the floats.

    Returns:
        ASCII base64 text.
    """
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _normalise(vector: list[float]) -> list[float]:
    norm = math.sqrt(math.fsum(v * v for v in vector))
    if norm == 0.0:
        # Astronomically unlikely for hashed features; a fixed axis keeps the unit norm.
        return [1.0] + [0.0] * (len(vector) - 1)
    return [v / norm for v in vector]
