"""The `X-Wandb-Fault` header: a client scripts the fault of its own request.

An out-of-process server (`wandb-inference serve`) cannot be reached with
`server.faults.push(...)`, so a client can describe the fault in a request header:

```
X-Wandb-Fault: <head>[;<name>[=<value>]]...
```

Names are case-insensitive and `-` equals `_`; a bare name means `=1`. Values cannot
contain `;`. Heads (each the named constructor of `Fault` with the same name):

| head | parameters |
|---|---|
| `429`, `503`, any status | `kind` (429: concurrency, quota, personal; 403: region, gateway), `message` |
| `html`, `text`, `detail`, `empty` | `status` (502 for html, else 500), `message` (title, text, detail) |
| `reset` / `close` | - (drop the connection, RST or FIN, before any response) |
| `stall` | `seconds` (then answer normally) |
| `cut` | `after` (chunks, default 1), `utf8` (cut inside a multi-byte char), `rst` |
| `no-done` | - (end the stream without `[DONE]`) |
| `error` | `after` (default 1), `event` (as `event: error`), `message` |
| `stall-stream` | `after` (default 1), `seconds` (default 1) |
| `awkward` | like `stream` with `pings;empty;crlf;split=3;non_ascii` on |
| `stream` | any mix of the stream parameters below |

Every canned response also takes `retry_after` (seconds, or an HTTP date verbatim),
`retry_after_date` (an HTTP date this many seconds from now) and `retry_after_ms`.
Every stream head also takes the stream parameters `cut`, `utf8`, `rst`, `no_done`,
`error`, `error_event`, `message`, `stall_at`, `stall`, `pings`, `empty`, `crlf`,
`split`, `pause`, `non_ascii` (the `StreamFault` fields). Every head takes:

- `delay=<seconds>`: stall before the fault.
- `id=<text>` and `times=<n>`: the first `n` requests carrying this `id` get the fault,
  later ones are answered normally (`times` defaults to 1 with an `id`; `times` without
  an `id` is an error). Without an `id`, every request carrying the header gets it.

Examples: `429;kind=concurrency;retry_after=1;times=2;id=run-7`, `reset`,
`cut;after=3;utf8;rst`, `html;status=502`, `stream;crlf;split=1;pause=0.001;no_done`.
A malformed header is answered with 400 naming the problem.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, final

import attrs

from ._errors import KINDS, Kind
from ._faults import Fault, RetryAfter, StreamFault

__all__ = ["FAULT_HEADER", "ScriptedFault", "parse_fault_header"]

FAULT_HEADER: Final = "X-Wandb-Fault"

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})
_RETRY: Final = ("retry_after", "retry_after_date", "retry_after_ms")
_STREAM_HEADS: Final = frozenset({"stream", "cut", "no_done", "error", "stall_stream", "awkward"})


@final
@attrs.frozen(kw_only=True)
class ScriptedFault:
    """A parsed `X-Wandb-Fault` header.

    Attributes:
        fault: the fault it describes.
        id: requests with the same id share one count of `times`.
        times: how many of them get the fault.
    """

    fault: Fault
    id: str | None = None
    times: int | None = None


class _Params:
    """The header's parameters; remembers which were read so leftovers are reported."""

    def __init__(self, raw: dict[str, str]) -> None:
        self._raw = raw
        self._read: set[str] = set()

    def text(self, name: str) -> str | None:
        self._read.add(name)
        return self._raw.get(name)

    def number(self, name: str) -> float | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {value!r}") from None
        if number < 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
        return number

    def integer(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        if not value.isdigit():
            raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        return int(value)

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.text(name)
        if value is None:
            return default
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ValueError(f"{name} must be a flag (1/0, true/false), got {value!r}")

    def leftovers(self) -> list[str]:
        return sorted(set(self._raw) - self._read)


def parse_fault_header(value: str) -> ScriptedFault:
    """Parse one `X-Wandb-Fault` header value.

    Args:
        value: the header value.

    Returns:
        The fault and its `id` / `times`.

    Raises:
        ValueError: the value is malformed; the message names the problem.
    """
    parts = [part.strip() for part in value.split(";")]
    head = parts[0].lower().replace("-", "_")
    raw: dict[str, str] = {}
    for part in parts[1:]:
        if not part:
            continue
        name, sep, text = part.partition("=")
        key = name.strip().lower().replace("-", "_")
        if not key:
            raise ValueError(f"empty parameter name in {part!r}")
        raw[key] = text.strip() if sep else "1"
    params = _Params(raw)
    fault = _build(head, params)
    delay = params.number("delay")
    if delay:
        fault = fault.with_delay(delay)
    fault_id = params.text("id")
    times = params.integer("times")
    if times is not None and fault_id is None:
        raise ValueError("times needs an id (requests carrying the same id share the count)")
    if times == 0:
        raise ValueError("times must be >= 1")
    leftovers = params.leftovers()
    if leftovers:
        raise ValueError(f"unknown parameter(s) for {parts[0]!r}: {', '.join(leftovers)}")
    return ScriptedFault(fault=fault, id=fault_id, times=times)


def _build(head: str, params: _Params) -> Fault:
    if head.isdigit() and len(head) == 3:
        status = int(head)
        kind = params.text("kind")
        if kind is not None and (status, kind) not in KINDS:
            allowed = ", ".join(sorted(k for s, k in KINDS if s == status)) or "none"
            raise ValueError(f"kind {kind!r} does not apply to {status} (kinds: {allowed})")
        return Fault.status(
            status,
            kind=_kind(kind),
            message=params.text("message"),
            retry_after=_retry_after(params),
            retry_after_ms=params.number("retry_after_ms"),
        )
    if head in ("html", "text", "detail", "empty"):
        status = params.integer("status") or (502 if head == "html" else 500)
        retry = {"retry_after": _retry_after(params), "retry_after_ms": params.number("retry_after_ms")}
        message = params.text("message")
        if head == "html":
            return Fault.html(status, title=message, **retry)
        if head == "text":
            return Fault.text(status, message, **retry)
        if head == "detail":
            return Fault.detail(status, message, **retry)
        return Fault.empty(status, **retry)
    if head == "reset":
        return Fault.reset()
    if head == "close":
        return Fault.close()
    if head == "stall":
        seconds = params.number("seconds")
        if seconds is None:
            raise ValueError("stall needs seconds=<number>")
        return Fault.stall(seconds)
    if head in _STREAM_HEADS:
        return Fault.streaming(_stream_shape(head, params), label=f"header {head}")
    raise ValueError(
        f"unknown fault {head!r}: expected a 3-digit status, html, text, detail, empty, reset, "
        "close, stall, cut, no-done, error, stall-stream, awkward or stream"
    )


def _kind(value: str | None) -> Kind | None:
    for _, kind in KINDS:
        if kind == value:
            return kind
    return None


def _retry_after(params: _Params) -> RetryAfter:
    seconds_from_now = params.number("retry_after_date")
    if seconds_from_now is not None:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_from_now)
    value = params.text("retry_after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value  # an HTTP date, passed on verbatim


def _stream_shape(head: str, params: _Params) -> StreamFault:
    awkward = head == "awkward"
    after = params.integer("after") if head in ("cut", "error", "stall_stream") else None
    first = 1 if after is None else after
    shape = StreamFault(
        cut_after=first if head == "cut" else params.integer("cut"),
        cut_mid_utf8=params.flag("utf8"),
        reset=params.flag("rst"),
        omit_done=head == "no_done" or params.flag("no_done"),
        error_after=first if head == "error" else params.integer("error"),
        error_event=params.flag("event") if head == "error" else params.flag("error_event"),
        stall_after=first if head == "stall_stream" else params.integer("stall_at"),
        stall_seconds=_stall_seconds(head, params),
        pings=params.flag("pings", awkward),
        empty_events=params.flag("empty", awkward),
        crlf=params.flag("crlf", awkward),
        split=params.integer("split") or (3 if awkward else None),
        split_pause=params.number("pause") or 0.0,
        non_ascii=params.flag("non_ascii", awkward),
    )
    message = params.text("message")
    return attrs.evolve(shape, error_message=message) if message else shape


def _stall_seconds(head: str, params: _Params) -> float:
    if head == "stall_stream":
        seconds = params.number("seconds")
        return 1.0 if seconds is None else seconds
    return params.number("stall") or 0.0
