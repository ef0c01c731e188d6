"""`EmbeddingResponse`: embeddings replies, base64 vectors decoded to floats."""

from __future__ import annotations

import base64
import binascii
import sys
from array import array
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self

import attrs
import httpx
from wandb_inference_generated.models.embedding_data import EmbeddingData as _EmbeddingData
from wandb_inference_generated.models.embedding_response import (
    EmbeddingResponse as _EmbeddingResponse,
)
from wandb_inference_generated.models.embedding_usage import EmbeddingUsage

from wandb_inference._exceptions import APIResponseValidationError

from ._base import ResponseMixin, set_response
from ._parse import parse_model

__all__ = ["EmbeddingData", "EmbeddingResponse", "decode_base64_embedding", "parse_embeddings"]


@attrs.define
class EmbeddingData(_EmbeddingData):
    """One vector of an embeddings reply: `.embedding` is a list of floats, `.index` its input.

    The API sends the vector as floats, or as base64 float32 when asked for (the SDK
    asks for it: it is smaller); `from_dict` decodes it, so it is always floats here.
    """

    if TYPE_CHECKING:
        embedding: list[float]

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        """Build one item, decoding a base64 vector.

        Raises:
            KeyError, TypeError, ValueError: no `index` or `embedding`, or an `embedding`
                that is neither a list nor base64 float32 data.
        """
        embedding = src_dict["embedding"]
        if isinstance(embedding, str):
            src_dict = {**src_dict, "embedding": decode_base64_embedding(embedding)}
        elif not isinstance(embedding, list):
            raise TypeError(f"an embedding is a list of floats or base64 text, not {type(embedding).__name__}")
        return super().from_dict(src_dict)


@attrs.define
class EmbeddingResponse(ResponseMixin, _EmbeddingResponse):
    """Embeddings, in input order; `.embeddings` gives the vectors as lists of floats."""

    _http_response: httpx.Response | None = attrs.field(default=None, init=False, repr=False, eq=False)

    if TYPE_CHECKING:
        # The items are the facade's `EmbeddingData` (`from_dict` builds them), whose
        # `.embedding` is `list[float]`; a list is invariant, hence the ignore.
        data: list[EmbeddingData]  # type: ignore[assignment]

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        """Build the reply with `EmbeddingData` items (base64 vectors decoded).

        Raises:
            KeyError, TypeError, ValueError: a reply of the wrong shape.
        """
        raw, usage = src_dict["data"], src_dict.get("usage")
        if not isinstance(raw, list):
            raise TypeError(f"`data` is a list, not {type(raw).__name__}")
        # The generated `from_dict` would keep a usage of the wrong shape as its raw dict.
        result = super().from_dict({**src_dict, "data": [], "usage": None})
        result.data = [EmbeddingData.from_dict(item) for item in raw]
        if usage is not None:
            result.usage = EmbeddingUsage.from_dict(usage)
        return result

    @property
    def embeddings(self) -> list[list[float]]:
        """The vectors, ordered by input index."""
        return [item.embedding for item in sorted(self.data, key=lambda item: item.index)]


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
