"""Client configuration: where the key, base URL and project come from, and their checks.

Pure functions of their inputs (environment and files are passed in or read here, never
cached), so the async and sync clients resolve options the same way.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from ._lazy import lazy_module

if TYPE_CHECKING:
    from . import _exceptions
else:
    _exceptions = lazy_module("wandb_inference._exceptions")  # loaded by the first error

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_LIMITS",
    "DEFAULT_TIMEOUT",
    "ENV_API_KEY",
    "ENV_BASE_URL",
    "ENV_PROJECT",
    "Secret",
    "check_timeout",
    "resolve_api_key",
    "resolve_base_url",
    "resolve_project",
    "validate_header_value",
]

DEFAULT_BASE_URL = "https://api.inference.wandb.ai/v1"
ENV_API_KEY = "WANDB_API_KEY"
ENV_BASE_URL = "WANDB_INFERENCE_BASE_URL"
ENV_PROJECT = "WANDB_INFERENCE_PROJECT"
NETRC_MACHINE = "api.wandb.ai"

# Reasoning models can think for minutes before the first byte: a long read timeout.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=60.0)
# The connection pool of a client the SDK creates. Idle connections are dropped after 4 s:
# servers commonly close them after 5 s (uvicorn, Node), and a request sent on a
# connection the server is closing fails after it was sent, which a POST cannot retry.
DEFAULT_LIMITS = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=4)

# Sets rather than regular expressions: nothing to compile at import, and as fast.
# Control characters that could split a header (tab is allowed, as in HTTP).
_CONTROL_CHARS = frozenset(map(chr, [*range(0x09), *range(0x0A, 0x20), 0x7F]))
# An HTTP header name (RFC 9110 `token`).
_TOKEN_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _has_control(value: str) -> bool:
    # isprintable() is False for every control character: a fast path for normal text.
    return not value.isprintable() and not _CONTROL_CHARS.isdisjoint(value)


def _is_project(value: str) -> bool:
    """`team/project`: exactly one slash, both sides non-empty and without whitespace."""
    team, slash, project = value.partition("/")
    return bool(team and slash and project) and "/" not in project and not any(c.isspace() for c in value)


class Secret:
    """An API key that never shows itself: not in repr, str, logs, copies or pickles."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def get(self) -> str:
        """The key itself, for the Authorization header only."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError(
            "wandb-inference API keys cannot be pickled; create the client again in the "
            "other process (it reads WANDB_API_KEY)"
        )


def _netrc_path(environ: Mapping[str, str]) -> Path:
    if environ.get("NETRC"):
        return Path(environ["NETRC"])
    return Path(environ.get("HOME") or Path.home()) / ".netrc"


def _netrc_hosts(environ: Mapping[str, str]) -> list[str]:
    hosts = [NETRC_MACHINE]
    wandb_base = environ.get("WANDB_BASE_URL")
    if wandb_base:
        host = urlsplit(wandb_base).hostname
        if host and host not in hosts:
            hosts.insert(0, host)
    return hosts


def _key_from_netrc(environ: Mapping[str, str]) -> tuple[str | None, str]:
    path = _netrc_path(environ)
    hosts = _netrc_hosts(environ)
    where = f"{path} (machine {' or '.join(hosts)})"
    if not path.is_file():
        return None, where
    import netrc

    try:
        parsed = netrc.netrc(str(path))
    except (OSError, netrc.NetrcParseError) as exc:
        return None, f"{where}: unreadable ({type(exc).__name__})"
    for host in hosts:
        entry = parsed.authenticators(host)
        if entry and entry[2]:
            return entry[2], where
    return None, where


def resolve_api_key(api_key: str | None, environ: Mapping[str, str] | None = None) -> Secret:
    """Find the API key: argument, then `WANDB_API_KEY`, then `~/.netrc` (`wandb login`).

    Raises:
        ConfigurationError: no key anywhere (the message names each place looked), or a
            key that cannot be sent in a header.
    """
    env = os.environ if environ is None else environ
    looked: list[str] = ["the api_key argument", f"the {ENV_API_KEY} environment variable"]
    key = api_key
    if key is None:
        key = env.get(ENV_API_KEY) or None
    if key is None:
        key, where = _key_from_netrc(env)
        looked.append(where)
    if key is None:
        raise _exceptions.ConfigurationError(
            "No W&B API key found. Looked in: " + "; ".join(looked) + ". Get a key at "
            "https://wandb.ai/authorize, then pass api_key=..., export WANDB_API_KEY, or "
            "run `wandb login`."
        )
    if not isinstance(key, str):
        raise _exceptions.ConfigurationError(f"api_key must be a str, not {type(key).__name__}")
    key = key.strip()
    if not key:
        raise _exceptions.ConfigurationError("The API key is empty: pass a real key or unset it.")
    if _has_control(key) or not key.isascii():
        raise _exceptions.ConfigurationError(
            "The API key contains control or non-ASCII characters (a pasted newline?); "
            "check it (the key itself is not shown)."
        )
    return Secret(value=key)


def resolve_base_url(base_url: str | httpx.URL | None, environ: Mapping[str, str] | None = None) -> str:
    """Find the base URL: argument, then `WANDB_INFERENCE_BASE_URL`, then the default.

    Raises:
        ConfigurationError: not an http(s) URL with a host.
    """
    env = os.environ if environ is None else environ
    source = "base_url"
    value: str | httpx.URL | None = base_url
    if value is None and env.get(ENV_BASE_URL):
        value, source = env[ENV_BASE_URL], ENV_BASE_URL
    if value is None:
        return DEFAULT_BASE_URL
    text = str(value).strip()
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError) as exc:
        raise _exceptions.ConfigurationError(f"{source} {text!r} is not a valid URL: {exc}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise _exceptions.ConfigurationError(
            f"{source} {text!r} must be an http(s) URL with a host, e.g. {DEFAULT_BASE_URL} or http://127.0.0.1:8000/v1"
        )
    if url.query or url.fragment:
        raise _exceptions.ConfigurationError(f"{source} {text!r} must not have a query or fragment")
    return text.rstrip("/")


def resolve_project(project: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """Find the `team/project` sent as `OpenAI-Project`: argument, then environment.

    Environment: `WANDB_INFERENCE_PROJECT` (`team/project`), else `WANDB_ENTITY` plus
    `WANDB_PROJECT` when both are set (or `WANDB_PROJECT` alone if it is `team/project`).

    Raises:
        ConfigurationError: not exactly `team/project` (one slash, no blanks or CR/LF).
    """
    env = os.environ if environ is None else environ
    source = "project"
    value = project
    if value is None:
        if env.get(ENV_PROJECT):
            value, source = env[ENV_PROJECT], ENV_PROJECT
        elif env.get("WANDB_PROJECT"):
            name = env["WANDB_PROJECT"]
            entity = env.get("WANDB_ENTITY")
            if entity:
                value, source = f"{entity}/{name}", "WANDB_ENTITY + WANDB_PROJECT"
            elif "/" in name:
                value, source = name, "WANDB_PROJECT"
    if value is None:
        return None
    if not isinstance(value, str):
        raise _exceptions.ConfigurationError(f"project must be a str, not {type(value).__name__}")
    # It is sent as a header: whitespace does not cover NUL and the other control
    # characters, and httpx encodes header values as ASCII.
    if not _is_project(value) or _has_control(value) or not value.isascii():
        raise _exceptions.ConfigurationError(
            f"{source} must be 'team/project' (exactly one slash, no spaces or line breaks), "
            f"got {value!r}. The team is the W&B entity that owns the project."
        )
    return value


def validate_header_value(name: str, value: str) -> str:
    """Reject header names and values that could split or smuggle a request.

    Raises:
        InvalidRequestError: a non-str, a control character (CR, LF, NUL...) in the value,
            or an invalid header name.
    """
    if not isinstance(name, str) or not name or not _TOKEN_CHARS.issuperset(name):
        raise _exceptions.InvalidRequestError(f"Invalid header name {name!r}")
    if not isinstance(value, str):
        raise _exceptions.InvalidRequestError(f"Header {name!r} must be a str, not {type(value).__name__}")
    if _has_control(value):
        raise _exceptions.InvalidRequestError(
            f"Header {name!r} contains a control character (CR, LF, NUL...): refused before "
            "sending, as it could inject headers."
        )
    if not value.isascii():
        # httpx encodes header values as ASCII: refuse here rather than let a
        # UnicodeEncodeError escape from the middle of a call.
        raise _exceptions.InvalidRequestError(f"Header {name!r} must be ASCII, got {value!r}")
    return value


def check_timeout(value: object) -> float | httpx.Timeout:
    """Validate a timeout given as seconds or an `httpx.Timeout`.

    Raises:
        InvalidRequestError: negative, zero, NaN or another type.
    """
    if isinstance(value, httpx.Timeout):
        return value
    seconds = math.nan
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float: refused, like infinity
            seconds = math.inf
    if not seconds > 0 or not math.isfinite(seconds):
        raise _exceptions.InvalidRequestError(
            f"timeout must be a number of seconds > 0 or an httpx.Timeout, got {value!r}"
        )
    return seconds
