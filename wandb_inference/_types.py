"""The one adapter between the facade and the generated models.

The facade's result types subclass the generated attrs models (so every generated field,
`to_dict()` and unknown-field keeping is there) and add what users reach for: the HTTP
response, the request id, `.text`. This module imports the generated package, so
`import wandb_inference` loads it lazily, on first use.
"""

from __future__ import annotations

import copyreg
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

import attrs
import httpx
from wandb_inference_generated.models.chat_completion import ChatCompletion as _ChatCompletion
from wandb_inference_generated.models.chat_completion_chunk import (
    ChatCompletionChunk as _ChatCompletionChunk,
)
from wandb_inference_generated.models.embedding_response import (
    EmbeddingResponse as _EmbeddingResponse,
)
from wandb_inference_generated.models.model import Model as _Model
from wandb_inference_generated.models.model_list import ModelList as _ModelList
from wandb_inference_generated.types import Unset

from ._exceptions import APIResponseValidationError, request_id_of

# The generated `to_dict()`s test `value is not UNSET`: a result that is copied
# (`copy.deepcopy`) or pickled (a process pool) must keep the one UNSET, or `to_dict()`
# emits the copies (and JSON cannot encode them). Reducing an `Unset` to the name of the
# module global makes both `pickle` and `copy` resolve it to the singleton.
copyreg.pickle(Unset, lambda _: "UNSET")

__all__ = [
    "ChatCompletion",
    "ChatCompletionChunk",
    "EmbeddingResponse",
    "Model",
    "ModelList",
    "parse_model",
]

T = TypeVar("T")


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


class _ResponseMixin:
    """Access to the HTTP response a result came from."""

    __slots__ = ()
    _http_response: httpx.Response | None

    @property
    def http_response(self) -> httpx.Response | None:
        """The `httpx.Response` (status, headers); None for objects built by hand."""
        return self._http_response

    @property
    def request_id(self) -> str | None:
        """The server's request id header, if it sent one (quote it in support tickets)."""
        if self._http_response is None:
            return None
        return request_id_of(self._http_response.headers)


@attrs.define
class ChatCompletion(_ResponseMixin, _ChatCompletion):
    """A chat completion: the generated model plus `.text`, `.reasoning`, `.http_response`."""

    _http_response: httpx.Response | None = attrs.field(default=None, init=False, repr=False, eq=False)

    @property
    def text(self) -> str:
        """The first choice's content ("" when the model sent none, e.g. only tool calls)."""
        if not self.choices:
            return ""
        return _text(self.choices[0].message.content) or ""

    @property
    def reasoning(self) -> str | None:
        """The first choice's reasoning (`reasoning`, or the older `reasoning_content`)."""
        if not self.choices:
            return None
        message = self.choices[0].message
        return _text(message.reasoning) or _text(message.reasoning_content)

    def _repr_markdown_(self) -> str:
        lines = [f"**ChatCompletion** `{self.model}` ({len(self.choices)} choice(s))"]
        if self.reasoning:
            lines.append(f"> *reasoning*: {self.reasoning[:500]}")
        lines.append("")
        lines.append(self.text or "*(no text)*")
        if not isinstance(self.usage, Unset) and self.usage is not None:
            lines.append(f"\n*usage*: {self.usage.to_dict()}")
        return "\n".join(lines)


@attrs.define
class ChatCompletionChunk(_ChatCompletionChunk):
    """One streamed chunk: the generated model plus `.text`."""

    @property
    def text(self) -> str:
        """The first choice's content delta ("" if none: role-only, tool or usage chunks)."""
        if not self.choices:
            return ""
        delta = self.choices[0].delta
        return _text(delta.content) or ""

    @property
    def reasoning(self) -> str:
        """The first choice's reasoning delta ("" if none)."""
        if not self.choices:
            return ""
        delta = self.choices[0].delta
        return _text(delta.reasoning) or _text(delta.reasoning_content) or ""


@attrs.define
class EmbeddingResponse(_ResponseMixin, _EmbeddingResponse):
    """Embeddings, in input order; `.embeddings` gives the vectors as lists of floats."""

    _http_response: httpx.Response | None = attrs.field(default=None, init=False, repr=False, eq=False)

    @property
    def embeddings(self) -> list[list[float]]:
        """The vectors, ordered by input index."""
        ordered = sorted(self.data, key=lambda item: item.index)
        return [item.embedding for item in ordered if isinstance(item.embedding, list)]


@attrs.define
class Model(_Model):
    """A served model (`.id`), joined with the catalog when the SDK knows it."""

    @property
    def info(self) -> Any:
        """The catalog row for this id (`ModelInfo`), or None for ids the SDK lacks."""
        from ._catalog import get_model_info

        return get_model_info(self.id)


@attrs.define
class ModelList(_ResponseMixin, _ModelList):
    """The model list: iterate it, index it, `len()` it, or read `.ids`."""

    _http_response: httpx.Response | None = attrs.field(default=None, init=False, repr=False, eq=False)

    def __iter__(self) -> Iterator[Model]:
        yield from self.data  # type: ignore[misc]  # parse_model_list builds Model items

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return True  # an empty list is still a valid (non-authoritative) answer

    @property
    def ids(self) -> list[str]:
        """The model ids, in the server's order."""
        return [item.id for item in self.data]

    def _repr_markdown_(self) -> str:
        rows = ["| id | owned_by |", "|---|---|"]
        rows += [f"| {m.id} | {m.owned_by if isinstance(m.owned_by, str) else ''} |" for m in self.data]
        return "\n".join(rows)


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


def parse_model_list(data: object, response: httpx.Response | None) -> ModelList:
    """Build a `ModelList` whose items are the facade's `Model`."""
    result = parse_model(ModelList, data, response)
    raw = data["data"] if isinstance(data, Mapping) else []
    result.data = [parse_model(Model, item, response) for item in raw]
    return result


def set_response(result: _ResponseMixin, response: httpx.Response) -> None:
    """Attach the HTTP response to a result."""
    object.__setattr__(result, "_http_response", response)
