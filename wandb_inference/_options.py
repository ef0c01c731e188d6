"""Client options: resolved and validated once per client, shared by both colours."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ._config import (
    DEFAULT_TIMEOUT,
    Secret,
    check_timeout,
    resolve_api_key,
    resolve_base_url,
    resolve_project,
    validate_header_value,
)
from ._lazy import lazy_module
from ._policy._retry import RetryPolicy
from ._version import __version__

if TYPE_CHECKING:
    from . import _exceptions
else:
    _exceptions = lazy_module("wandb_inference._exceptions")  # loaded by the first error

__all__ = ["ClientOptions", "ClientOptionsMixin", "derive_options", "resolve_options", "user_agent"]

DEFAULT_MAX_EVENT_SIZE = 16 << 20  # 16 MiB: one SSE line or event (see _sse.py)


def user_agent() -> str:
    """`wandb-inference/<version> (Python <version>; httpx <version>)`."""
    python = sys.version.split()[0]  # what platform.python_version() gives, without importing it
    return f"wandb-inference/{__version__} (Python {python}; httpx {httpx.__version__})"


_USER_AGENT = user_agent()


@dataclasses.dataclass(frozen=True, kw_only=True, repr=False, slots=True)
class ClientOptions:
    """A client's resolved, validated options (the key wrapped so it never shows)."""

    api_key: Secret
    base_url: str
    project: str | None
    timeout: httpx.Timeout
    retry: RetryPolicy
    default_headers: Mapping[str, str]
    check_capabilities: bool
    max_concurrency: int | None
    adaptive_concurrency: bool
    max_event_size: int
    # Tracing: spans and metrics when OpenTelemetry has a provider (`_tracing`); content
    # (messages) on spans only when asked here, or (None) by the conventions' variable.
    tracing: bool = True
    capture_message_content: bool | None = None

    def __repr__(self) -> str:
        return (
            f"ClientOptions(base_url={self.base_url!r}, project={self.project!r}, "
            f"timeout={self.timeout!r}, retry={self.retry!r}, api_key=Secret('***'))"
        )

    def headers(self) -> dict[str, str]:
        """The headers every request carries."""
        headers = {
            "Authorization": f"Bearer {self.api_key.get()}",
            "User-Agent": _USER_AGENT,
            "Accept": "application/json",
            # Only what the SDK inflates under its size caps (`_transports/_decompress.py`).
            "Accept-Encoding": "gzip, deflate",
        }
        if self.project is not None:
            headers["OpenAI-Project"] = self.project
        headers.update(self.default_headers)
        return headers


def _timeout(value: object) -> httpx.Timeout:
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        checked = check_timeout(value)
    except _exceptions.InvalidRequestError as exc:
        raise _exceptions.ConfigurationError(str(exc)) from exc
    return checked if isinstance(checked, httpx.Timeout) else httpx.Timeout(checked)


def resolve_options(
    *,
    api_key: str | None,
    project: str | None,
    base_url: str | httpx.URL | None,
    timeout: float | httpx.Timeout | None,
    max_retries: int | None,
    retry_policy: RetryPolicy | None,
    default_headers: Mapping[str, str] | None,
    check_capabilities: bool,
    max_concurrency: int | None,
    adaptive_concurrency: bool,
    max_event_size: int | None = None,
    tracing: bool = True,
    capture_message_content: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClientOptions:
    """Resolve and validate a client's options.

    Raises:
        ConfigurationError: any option that is missing or invalid.
    """
    policy = retry_policy if retry_policy is not None else RetryPolicy()
    if not isinstance(policy, RetryPolicy):
        raise _exceptions.ConfigurationError("retry_policy must be a wandb_inference.RetryPolicy")
    if max_retries is not None:
        try:
            policy = dataclasses.replace(policy, max_retries=max_retries)
        except ValueError as exc:
            raise _exceptions.ConfigurationError(str(exc)) from exc
    headers: dict[str, str] = {}
    if default_headers is not None:
        if not isinstance(default_headers, Mapping):
            raise _exceptions.ConfigurationError("default_headers must be a dict of str -> str")
        try:
            for name, value in default_headers.items():
                headers[name] = validate_header_value(name, value)
        except _exceptions.InvalidRequestError as exc:
            raise _exceptions.ConfigurationError(str(exc)) from exc
    if max_concurrency is not None and (
        isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1
    ):
        raise _exceptions.ConfigurationError(f"max_concurrency must be None or an int >= 1, got {max_concurrency!r}")
    event_size = DEFAULT_MAX_EVENT_SIZE if max_event_size is None else max_event_size
    if isinstance(event_size, bool) or not isinstance(event_size, int) or event_size < 1024:
        raise _exceptions.ConfigurationError(f"max_event_size must be an int >= 1024 (bytes), got {max_event_size!r}")
    if not isinstance(tracing, bool) or not isinstance(capture_message_content, bool | None):
        raise _exceptions.ConfigurationError("tracing must be a bool, capture_message_content a bool or None")
    return ClientOptions(
        api_key=resolve_api_key(api_key, environ),
        base_url=resolve_base_url(base_url, environ),
        project=resolve_project(project, environ),
        timeout=_timeout(timeout),
        retry=policy,
        default_headers=headers,
        check_capabilities=bool(check_capabilities),
        max_concurrency=max_concurrency,
        adaptive_concurrency=bool(adaptive_concurrency),
        max_event_size=event_size,
        tracing=tracing,
        capture_message_content=capture_message_content,
    )


def derive_options(old: ClientOptions, changes: Mapping[str, Any]) -> ClientOptions:
    """Options for `with_options()`: the old ones with `changes` (None = keep) applied."""
    headers = dict(old.default_headers)
    if changes.get("default_headers"):
        headers.update(changes["default_headers"])

    def pick(name: str, current: Any) -> Any:
        value = changes.get(name)
        return current if value is None else value

    return resolve_options(
        api_key=pick("api_key", old.api_key.get()),
        project=pick("project", old.project),
        base_url=pick("base_url", old.base_url),
        timeout=pick("timeout", old.timeout),
        max_retries=changes.get("max_retries"),
        retry_policy=pick("retry_policy", old.retry),
        default_headers=headers,
        check_capabilities=pick("check_capabilities", old.check_capabilities),
        max_concurrency=old.max_concurrency,
        adaptive_concurrency=old.adaptive_concurrency,
        max_event_size=old.max_event_size,
        tracing=pick("tracing", old.tracing),
        capture_message_content=pick("capture_message_content", old.capture_message_content),
        environ={},
    )


class ClientOptionsMixin:
    """Read-only views of a client's options (both clients)."""

    __slots__ = ()
    _options: ClientOptions

    @property
    def base_url(self) -> str:
        """The API base URL requests go to."""
        return self._options.base_url

    @property
    def project(self) -> str | None:
        """The `team/project` sent as `OpenAI-Project`, or None."""
        return self._options.project

    @property
    def timeout(self) -> httpx.Timeout:
        """The default timeout of each attempt."""
        return self._options.timeout

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy."""
        return self._options.retry

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt."""
        return self._options.retry.max_retries
