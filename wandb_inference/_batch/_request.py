"""One batch request: an OpenAI Batch input line, validated before anything is sent. Pure.

An input line is `{"custom_id", "method": "POST", "url", "body"}` with `url`
`/v1/chat/completions` or `/v1/embeddings` (with or without `/v1`). The body is checked
by the same code that checks `client.chat.create(...)` / `client.embeddings.create(...)`
arguments (`_request.build_*_body`), so a line that passes here is refused by the service
only for what the SDK cannot know (an unknown model, quota, ...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, final

import attrs

from wandb_inference._exceptions import InvalidRequestError
from wandb_inference._request import (
    ChatParams,
    EmbeddingParams,
    RequestOptions,
    build_chat_body,
    build_embeddings_body,
)

__all__ = ["ENDPOINT_URLS", "BatchRequest", "Endpoint", "call_arguments"]

Endpoint = Literal["chat", "embeddings"]

# The canonical URL of each endpoint, as OpenAI's batch files spell it.
ENDPOINT_URLS: Final[dict[Endpoint, str]] = {"chat": "/v1/chat/completions", "embeddings": "/v1/embeddings"}
_URLS: Final[dict[str, Endpoint]] = {
    "/v1/chat/completions": "chat",
    "/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/embeddings": "embeddings",
}
_OPTION_KEYS: Final = frozenset(RequestOptions.__annotations__)
# Body keys passed to `create()` as typed parameters; any other key goes in `extra_body`
# (including keys named like per-call options, e.g. a body field called `timeout`).
_CHAT_KEYS: Final = frozenset(ChatParams.__annotations__) - _OPTION_KEYS
_EMBEDDING_KEYS: Final = frozenset(EmbeddingParams.__annotations__) - _OPTION_KEYS
_MAX_SHOWN: Final = 60


def _fail(message: str) -> InvalidRequestError:
    return InvalidRequestError(message)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _canonical_url(url: object) -> str:
    endpoint = _URLS.get(url) if isinstance(url, str) else None
    if endpoint is None:
        raise _fail(f"url must be /v1/chat/completions or /v1/embeddings, got {_shown(url)}")
    return ENDPOINT_URLS[endpoint]


@final
@attrs.frozen(kw_only=True)
class BatchRequest:
    """One request of a batch job (an OpenAI Batch input line).

    Build one with `BatchRequest.chat(...)`, `BatchRequest.embeddings(...)` or
    `BatchRequest.from_line(...)`; plain dicts in the input line's shape are accepted
    wherever a `BatchRequest` is.

    Attributes:
        custom_id: the caller's key for this request; results carry it.
        url: `/v1/chat/completions` or `/v1/embeddings`.
        body: the request body, as it would be sent to that endpoint.
        line: the line number in the input file (or the position in an iterable, from 1).
    """

    custom_id: str
    url: str = attrs.field(converter=_canonical_url)
    body: Mapping[str, Any]
    line: int | None = None

    @property
    def endpoint(self) -> Endpoint:
        """`chat` or `embeddings`."""
        return _URLS[self.url]

    @property
    def model(self) -> str | None:
        """The body's model, if it is a string."""
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @classmethod
    def chat(cls, custom_id: str, *, model: str, messages: Sequence[Any], **params: Any) -> BatchRequest:
        """A chat completion request (the keywords of `client.chat.create`, no `stream`).

        Raises:
            InvalidRequestError: an invalid argument.
        """
        body = {"model": model, "messages": list(messages), **params}
        return cls.from_line({"custom_id": custom_id, "method": "POST", "url": ENDPOINT_URLS["chat"], "body": body})

    @classmethod
    def embeddings(cls, custom_id: str, *, model: str, input: str | Sequence[str], **params: Any) -> BatchRequest:
        """An embeddings request (the keywords of `client.embeddings.create`).

        Raises:
            InvalidRequestError: an invalid argument.
        """
        text = input if isinstance(input, str) else list(input)
        body = {"model": model, "input": text, **params}
        line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT_URLS["embeddings"], "body": body}
        return cls.from_line(line)

    @classmethod
    def from_line(
        cls,
        line: str | bytes | Mapping[str, Any],
        *,
        line_number: int | None = None,
        model: str | None = None,
    ) -> BatchRequest:
        """Parse and validate one input line (JSON text or the decoded object).

        Args:
            line: `{"custom_id", "method": "POST", "url", "body"}`.
            line_number: kept as `.line` (the input file's line number).
            model: replaces the body's model (the CLI's `--model`).

        Raises:
            InvalidRequestError: what is wrong with the line, in one sentence.
        """
        if isinstance(line, str | bytes | bytearray):
            try:
                data = json.loads(line)
            except (ValueError, UnicodeDecodeError) as exc:
                raise _fail(f"not a JSON object ({exc})") from None
        else:
            data = line
        if not isinstance(data, Mapping):
            raise _fail(f"not a JSON object (a {type(data).__name__})")
        custom_id = data.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            raise _fail(f"custom_id must be a non-empty string, got {_shown(custom_id)}")
        method = data.get("method", "POST")
        if not isinstance(method, str) or method.upper() != "POST":
            raise _fail(f"method must be POST, got {_shown(method)}")
        url = _canonical_url(data.get("url"))
        body = data.get("body")
        if not isinstance(body, Mapping):
            raise _fail(f"body must be a JSON object, got {_shown(body)}")
        if model is not None:
            body = {**body, "model": model}
        request = cls(custom_id=custom_id, url=url, body=body, line=line_number)
        call_arguments(request, check=True)
        return request

    def to_line(self) -> dict[str, Any]:
        """The OpenAI Batch input line for this request."""
        return {"custom_id": self.custom_id, "method": "POST", "url": self.url, "body": dict(self.body)}


def call_arguments(request: BatchRequest, *, check: bool = False) -> dict[str, Any]:
    """The keyword arguments of `client.chat.create` / `client.embeddings.create` for a request.

    Body keys the SDK knows become typed parameters; the others go in `extra_body`, sent
    as they are. `stream` is refused: a batch line's reply is one JSON document.

    Args:
        request: the request.
        check: run the SDK's argument checks now (they run again when it is sent).

    Raises:
        InvalidRequestError: what the SDK would refuse before sending.
    """
    body = request.body
    fixed: tuple[str, ...]
    if "model" not in body:
        raise _fail("body.model is missing (or give a model for every line: --model / model=)")
    if request.endpoint == "chat":
        if body.get("stream") not in (None, False):
            raise _fail("body.stream: batch lines are not streamed; remove it")
        if "messages" not in body:
            raise _fail("body.messages is missing")
        fixed, known = ("model", "messages", "stream"), _CHAT_KEYS
    else:
        if "input" not in body:
            raise _fail("body.input is missing")
        fixed, known = ("model", "input"), _EMBEDDING_KEYS
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in body.items():
        if key in known:
            kwargs[key] = value
        elif key not in fixed:
            extra[key] = value
    if extra:
        kwargs["extra_body"] = extra
    if request.endpoint == "chat":
        if check:
            build_chat_body(body["model"], body["messages"], False, kwargs)
        kwargs["model"] = body["model"]
        kwargs["messages"] = body["messages"]
    else:
        if check:
            build_embeddings_body(body["model"], body["input"], kwargs)
        kwargs["model"] = body["model"]
        kwargs["input"] = body["input"]
    return kwargs
