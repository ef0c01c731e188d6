"""Embeddings replies: base64 vectors decoded to floats, results typed."""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from collections.abc import Mapping

import httpx

from ._exceptions import APIResponseValidationError
from ._types import EmbeddingResponse, parse_model, set_response

__all__ = ["decode_base64_embedding", "parse_embeddings"]


def decode_base64_embedding(text: str) -> list[float]:
    """Decode a base64 string of little-endian float32 values to floats.

    Raises:
        ValueError: not base64, or not a whole number of float32 values.
    """
    raw = base64.b64decode(text, validate=True)
    if len(raw) % 4:
        raise ValueError(f"{len(raw)} bytes is not a whole number of float32 values")
    values = array("f")
    values.frombytes(raw)
    if sys.byteorder == "big":  # pragma: no cover - the wire format is little-endian
        values.byteswap()
    return values.tolist()


def parse_embeddings(data: object, response: httpx.Response) -> EmbeddingResponse:
    """Build the typed embeddings reply, decoding base64 vectors.

    Raises:
        APIResponseValidationError: a reply of the wrong shape or an undecodable vector.
    """
    if isinstance(data, Mapping) and isinstance(data.get("data"), list):
        for item in data["data"]:
            if isinstance(item, dict) and isinstance(item.get("embedding"), str):
                try:
                    item["embedding"] = decode_base64_embedding(item["embedding"])
                except (ValueError, binascii.Error) as exc:
                    raise APIResponseValidationError(
                        f"Embedding {item.get('index')} is not valid base64 float32 data: {exc}",
                        request=response.request,
                        response=response,
                        body=None,
                    ) from exc
    result = parse_model(EmbeddingResponse, data, response)
    set_response(result, response)
    return result
