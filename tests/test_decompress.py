"""Bounded decompression (`_transports/_decompress.py`), without sockets: any cut of the
compressed bytes inflates to the same body, in pieces never over `PIECE` bytes."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wandb_inference._transports._decompress import PIECE, decoder_for

BODY = b"".join(b"line %d of a body that compresses well\n" % i for i in range(20_000))  # ~0.8 MB


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


CODINGS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "deflate-raw": _raw_deflate,
    "gzip, gzip": lambda data: gzip.compress(gzip.compress(data)),
    "identity, gzip": gzip.compress,
}


def _decode(coding: str, pieces: list[bytes]) -> list[bytes]:
    header = coding.replace("deflate-raw", "deflate")
    decoder = decoder_for(httpx.Response(200, headers={"content-encoding": header}))
    assert decoder is not None
    out = [piece for data in pieces for piece in decoder.decode(data)]
    return out + list(decoder.flush())


@settings(max_examples=40, deadline=None)
@given(coding=st.sampled_from(sorted(CODINGS)), cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_any_cut_inflates_to_the_body_in_bounded_pieces(coding: str, cuts: list[int]) -> None:
    packed = CODINGS[coding](BODY)
    points = sorted({c % (len(packed) + 1) for c in cuts})
    pieces = [packed[a:b] for a, b in zip([0, *points], [*points, len(packed)], strict=True)]
    out = _decode(coding, pieces)
    assert b"".join(out) == BODY
    assert max(map(len, out)) <= PIECE


def test_one_read_of_a_bomb_comes_out_a_piece_at_a_time() -> None:
    """64 KiB of gzip that inflates to 64 MiB: each step yields at most one piece, and the
    reader can stop after the first."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    bomb = packer.compress(bytes(64 << 20)) + packer.flush()
    assert len(bomb) < 128 << 10
    decoder = decoder_for(httpx.Response(200, headers={"content-encoding": "gzip"}))
    assert decoder is not None
    pieces = decoder.decode(bomb)
    first = next(pieces)
    assert 0 < len(first) <= PIECE
    assert sum(len(p) for p in pieces) + len(first) == 64 << 20


def test_identity_and_no_coding_need_no_decoder() -> None:
    assert decoder_for(httpx.Response(200)) is None
    assert decoder_for(httpx.Response(200, headers={"content-encoding": "identity"})) is None


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, br"])
def test_codings_the_sdk_did_not_ask_for_are_refused(coding: str) -> None:
    with pytest.raises(httpx.DecodingError, match="did not ask for"):
        decoder_for(httpx.Response(200, headers={"content-encoding": coding}))


def test_corrupt_data_is_a_decoding_error() -> None:
    decoder = decoder_for(httpx.Response(200, headers={"content-encoding": "gzip"}))
    assert decoder is not None
    packed = gzip.compress(BODY)
    with pytest.raises(httpx.DecodingError):
        list(decoder.decode(packed[:20] + b"\xff" * 64 + packed[84:]))
