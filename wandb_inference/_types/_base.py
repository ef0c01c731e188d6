"""The shared base of the facade's result types (each lives beside its parser).

The result types subclass the generated attrs models (so every generated field,
`to_dict()` and unknown-field keeping is there) and add what users reach for: the HTTP
response, the request id, `.text`. Each is defined in the module that parses it, so a
call loads only the generated models its reply needs (a stream never loads the
completion, embeddings or model-list models, nor a plain call the chunk ones):

- `ChatCompletion`: `_completion`; `ChatCompletionChunk`: `_chunk`;
  `EmbeddingResponse`: `_embeddings`; `Model`, `ModelList`: `_model_list`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

import httpx

from wandb_inference._headers import request_id_of
from wandb_inference._policy._redact import forget_transport

__all__ = [
    "TOP_KEYS",
    "ResponseMixin",
    "extras",
    "logprobs_of",
    "set_response",
    "text_of",
    "usage_fields",
    "usage_of",
]

# The keys the API document names on a completion and on a chunk (the same set).
TOP_KEYS = frozenset({"id", "created", "model", "choices", "object", "usage", "system_fingerprint"})


def text_of(value: object) -> str | None:
    """`value` if it is a str, else None."""
    return value if isinstance(value, str) else None


def extras(data: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    """The items of `data` whose keys are not `known` (what `from_dict` keeps aside)."""
    if data.keys() <= known:
        return {}
    return {k: v for k, v in data.items() if k not in known}


def logprobs_of(value: object) -> Any:
    """A choice's `logprobs` as the generated model (None for null or absent).

    Shared by the chunk and completion parsers; the model loads when a reply first has one.
    A token without `top_logprobs` (the API documents the list; a few servers leave it out,
    or send null, when none were asked for) gets an empty one.

    Raises:
        TypeError: logprobs that are not null or an object of the documented shape.
    """
    if isinstance(value, dict):
        from wandb_inference_generated.models.logprobs import Logprobs
        from wandb_inference_generated.models.token_logprob import TokenLogprob

        for key in ("content", "refusal"):
            tokens = value.get(key)
            if isinstance(tokens, list) and any(_lacks_top_logprobs(token) for token in tokens):
                value = {**value, key: [_with_top_logprobs(token) for token in tokens]}
        logprobs = Logprobs.from_dict(value)
        for tokens in (logprobs.content, logprobs.refusal):
            # The generated code keeps a list it cannot parse as the raw list it was.
            if tokens is not None and not all(isinstance(token, TokenLogprob) for token in tokens):
                raise TypeError(f"logprobs are not of the documented shape: {value!r:.200}")
        return logprobs
    if value is not None:
        raise TypeError(f"logprobs are an object or null, not {type(value).__name__}")
    return None


def _lacks_top_logprobs(token: object) -> TypeGuard[dict[str, Any]]:
    return isinstance(token, dict) and token.get("top_logprobs") is None


def _with_top_logprobs(token: object) -> object:
    return {**token, "top_logprobs": []} if _lacks_top_logprobs(token) else token


def usage_fields(data: Mapping[str, Any]) -> Mapping[str, Any]:
    """A usage object with `completion_tokens`, derived as `total - prompt` if missing.

    The API documents all three counts; a server that leaves `completion_tokens` out (or
    sends null) still gives a `Usage` whose counts are ints. Anything else is as sent.
    """
    if data.get("completion_tokens") is not None:
        return data
    prompt, total = data.get("prompt_tokens"), data.get("total_tokens")
    if prompt.__class__ is not int or total.__class__ is not int:
        return data  # from_dict refuses it (or keeps what it was given)
    return {**data, "completion_tokens": max(total - prompt, 0)}


def usage_of(value: object) -> Any:
    """A reply's `usage` as the generated model (None for null or absent).

    Shared by the chunk and completion parsers; the model loads when a reply first has one.

    Raises:
        TypeError, KeyError: a usage that is not null or an object with the documented counts.
    """
    if isinstance(value, dict):
        if value.get("completion_tokens") is None:
            value = usage_fields(value)
        model = _usage_model or _load_usage_model()
        if value.keys() == _COUNTS:
            # The three counts alone (nearly every reply): what `from_dict` builds, without
            # its copy of the dict and its parsers of the details (absent: None).
            return model(
                prompt_tokens=value["prompt_tokens"],
                completion_tokens=value["completion_tokens"],
                total_tokens=value["total_tokens"],
            )
        return model.from_dict(value)
    if value is not None:
        raise TypeError(f"usage is an object or null, not {type(value).__name__}")
    return None


_usage_model: Any = None
_COUNTS = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})


def _load_usage_model() -> Any:
    global _usage_model
    from wandb_inference_generated.models.usage import Usage

    _usage_model = Usage
    return Usage


class ResponseMixin:
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


def set_response(result: ResponseMixin, response: httpx.Response) -> None:
    """Attach the HTTP response to a result; once closed, it drops the transport's objects.

    The transport's stream keeps the request as sent, key and all (see `_redact`).
    """
    forget_transport(response)
    object.__setattr__(result, "_http_response", response)
