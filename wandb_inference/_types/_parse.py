"""Parsing a decoded reply into a result type, or raising the SDK's error for a bad shape.

Apart from `_base` so that the result types do not import the error tree (which names
`ChatCompletion` as a stream error's `.partial`): errors sit above results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import httpx

from wandb_inference._exceptions import APIResponseValidationError

__all__ = ["parse_model"]

T = TypeVar("T")


def parse_model(cls: type[T], data: object, response: httpx.Response | None = None) -> T:
    """Build `cls` from a decoded JSON value, raising the SDK's error on a bad shape.

    Raises:
        APIResponseValidationError: not an object, or missing/ill-typed required fields.
    """
    if not isinstance(data, Mapping):
        raise APIResponseValidationError(
            f"Expected a JSON object for {cls.__name__}, got {type(data).__name__}: the "
            "server's reply does not match the API (is the base URL right?)",
            request=response.request if response is not None else None,
            response=response,
            body=data,
        )
    try:
        result = cls.from_dict(data)  # type: ignore[attr-defined]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise APIResponseValidationError(
            f"The server's reply is not a valid {cls.__name__} ({type(exc).__name__}: {exc}); "
            "is the base URL an OpenAI-compatible API?",
            request=response.request if response is not None else None,
            response=response,
            body=data,
        ) from exc
    return result  # type: ignore[no-any-return]
