"""`EmbeddingResponse`: embeddings replies, base64 vectors decoded to floats."""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from collections.abc import Mapping

import attrs
import httpx
from wandb_inference_generated.models.embedding_response import (
    EmbeddingResponse as _EmbeddingResponse,
)

from wandb_inference._exceptions import APIResponseValidationError

from ._base import ResponseMixin, set_response
from ._parse import parse_model

__all__ = ["EmbeddingResponse", "decode_base64_embedding", "parse_embeddings"]


@attrs.define
class EmbeddingResponse(ResponseMixin, _EmbeddingResponse):
    """Embeddings, in input order; `.embeddings` gives the vectors as lists of floats."""

    _http_response: httpx.Response | None = attrs.field(default=None, init=False, repr=False, eq=False)

    @property
    def embeddings(self) -> list[list[float]]:
        """The vectors, ordered by input index."""
        ordered = sorted(self.data, key=lambda item: item.index)
        return [item.embedding for item in ordered if isinstance(item.embedding, list)]


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
