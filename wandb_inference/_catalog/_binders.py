"""What the per-model constructors stand on: `client.chat_model(id)` and friends.

The clients inherit these (through the generated `_constructors.py`); the bound model
classes themselves (`_bound.py`) and the catalog load when a model is first bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from wandb_inference._lazy import lazy_module

if TYPE_CHECKING:
    import httpx

    from wandb_inference import _exceptions

    from . import _bound
    from ._bound import AsyncChatModel, AsyncEmbeddingModel, ChatModel, EmbeddingModel
else:
    _bound = lazy_module("wandb_inference._catalog._bound")
    _exceptions = lazy_module("wandb_inference._exceptions")

__all__ = ["AsyncBinder", "SyncBinder", "add_constructors"]

_ARGS_DOC = """

Args:
    model: another id to send instead (a staging id, a `wandb-artifact:///` LoRA).
    timeout: this model's per-call timeout (reasoning models default to a long read).
"""


def _check_override(model: str | None, default: str) -> str:
    if model is None:
        return default
    if not isinstance(model, str) or not model.strip():
        raise _exceptions.InvalidRequestError("model= must be a non-empty model id string")
    return model


def _bind(client: object, kind: str, default: str, model: str | None, timeout: float | httpx.Timeout | None) -> Any:
    """A `_bound.<kind>` for `default`'s catalog row (warning if retired), sending `model`."""
    from ._lookup import get_model_info

    info = get_model_info(default)
    # The binders are the clients' bases: `client.timeout` is the client's own timeout.
    client_timeout: httpx.Timeout = client.timeout  # type: ignore[attr-defined]
    # The retired-model warning points at the line that called the binding method.
    defaults = _bound.bound_defaults(info, timeout, client_timeout, stacklevel=4)
    return getattr(_bound, kind)(client, _check_override(model, default), info, defaults)


class AsyncBinder:
    """What the per-model constructors of `AsyncClient` stand on."""

    __slots__ = ()

    def chat_model(self, model: str, *, timeout: float | httpx.Timeout | None = None) -> AsyncChatModel:
        """Bind any chat model id (catalog or not, e.g. a `wandb-artifact:///` LoRA)."""
        return _bind(self, "AsyncChatModel", _check_override(model, ""), None, timeout)  # type: ignore[no-any-return]

    def embedding_model(self, model: str, *, timeout: float | httpx.Timeout | None = None) -> AsyncEmbeddingModel:
        """Bind any embeddings model id."""
        return _bind(self, "AsyncEmbeddingModel", _check_override(model, ""), None, timeout)  # type: ignore[no-any-return]


class SyncBinder:
    """What the per-model constructors of `Client` stand on."""

    __slots__ = ()

    def chat_model(self, model: str, *, timeout: float | httpx.Timeout | None = None) -> ChatModel:
        """Bind any chat model id (catalog or not, e.g. a `wandb-artifact:///` LoRA)."""
        return _bind(self, "ChatModel", _check_override(model, ""), None, timeout)  # type: ignore[no-any-return]

    def embedding_model(self, model: str, *, timeout: float | httpx.Timeout | None = None) -> EmbeddingModel:
        """Bind any embeddings model id."""
        return _bind(self, "EmbeddingModel", _check_override(model, ""), None, timeout)  # type: ignore[no-any-return]


def _constructor(kind: str, default: str) -> Callable[..., Any]:
    # One function per model and class: binds `default` as a `_bound.<kind>`.
    def constructor(self: Any, *, model: str | None = None, timeout: float | httpx.Timeout | None = None) -> Any:
        return _bind(self, kind, default, model, timeout)

    return constructor


def add_constructors(cls: type[AsyncBinder | SyncBinder], rows: Iterable[tuple[str, str, str, bool, str]]) -> None:
    """Give `cls` a real method per catalog row: `(method, model id, name, embeddings?, summary)`.

    Built from a table rather than written out (less source to compile on import); the
    signatures and docstrings mypy and editors read are in the generated `.pyi` stub, and
    `help()`, `inspect.signature()` and `dir()` show the same at run time.
    """
    prefix = "Async" if issubclass(cls, AsyncBinder) else ""
    for method, model_id, name, embedding, summary in rows:
        kind = prefix + ("EmbeddingModel" if embedding else "ChatModel")
        fn = _constructor(kind, model_id)
        fn.__name__ = method
        fn.__qualname__ = f"{cls.__qualname__}.{method}"
        fn.__module__ = cls.__module__
        fn.__doc__ = f"{name} (`{model_id}`).\n\n{summary}.{_ARGS_DOC}"
        fn.__annotations__ = {"model": "str | None", "timeout": "float | httpx.Timeout | None", "return": kind}
        setattr(cls, method, fn)
