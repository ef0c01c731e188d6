"""The progress display of a batch job, and its summary in words.

On a terminal, with the `progress` extra (`rich`) installed: a live bar with done/total,
rate, ETA, tokens in/out, errors and 429s absorbed. Otherwise (a file, a pipe, CI, or
no `rich`): one plain line every 10 seconds with the same numbers. `rich` is imported
only here, only when a bar is drawn.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, TextIO, final

if TYPE_CHECKING:
    from ._summary import BatchStats, BatchSummary

__all__ = [
    "NoProgress",
    "PlainProgress",
    "Progress",
    "ProgressMode",
    "format_status",
    "format_summary",
    "make_progress",
]

ProgressMode = Literal["auto", "rich", "plain", "none"]
_PLAIN_INTERVAL: Final = 10.0


class Progress(Protocol):
    """What a job tells its display: `tick` a few times a second, `close` at the end."""

    def tick(self, stats: BatchStats) -> None: ...
    def close(self, stats: BatchStats) -> None: ...


def _count(n: float) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.1f}G"
    if n >= 1e6:
        return f"{n / 1e6:.1f}M"
    if n >= 1e4:
        return f"{n / 1e3:.0f}k"
    return f"{n:,.0f}"


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _rate_and_eta(stats: BatchStats) -> tuple[float, float | None]:
    elapsed = stats.elapsed()
    rate = stats.finished / elapsed if elapsed > 0 else 0.0
    if stats.total is None or rate <= 0:
        return rate, None
    return rate, max(0, stats.total - stats.finished) / rate


def _extras(stats: BatchStats) -> str:
    return (
        f"tokens {_count(stats.prompt_tokens)} in / {_count(stats.completion_tokens)} out, "
        f"{stats.failed:,} errors, {stats.rate_limited:,} 429s absorbed"
    )


def format_status(stats: BatchStats) -> str:
    """One line: done/total (percent), rate, ETA, tokens, errors, 429s absorbed."""
    rate, eta = _rate_and_eta(stats)
    if stats.total:
        done = f"{stats.finished:,}/{stats.total:,} ({100 * stats.finished / stats.total:.0f}%)"
    else:
        done = f"{stats.finished:,}"
    when = f", ETA {_duration(eta)}" if eta is not None else ""
    return f"batch: {done}, {rate:.1f}/s{when}, {_extras(stats)}"


@final
class NoProgress:
    """No display (`--quiet`, or `progress=False`)."""

    def tick(self, stats: BatchStats) -> None:
        """Nothing."""

    def close(self, stats: BatchStats) -> None:
        """Nothing."""


@final
class PlainProgress:
    """A status line every `interval` seconds (not a terminal, or no `rich`)."""

    def __init__(self, stream: TextIO, interval: float = _PLAIN_INTERVAL) -> None:
        self._stream = stream
        self._interval = interval
        self._last = time.monotonic()

    def tick(self, stats: BatchStats) -> None:
        """Print the status if `interval` passed since the last one."""
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._stream.write(format_status(stats) + "\n")
            self._stream.flush()

    def close(self, stats: BatchStats) -> None:
        """Nothing: the summary follows."""


@final
class _RichProgress:
    """A `rich` progress bar on the terminal (fits in 80 columns)."""

    def __init__(self, stream: TextIO, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self._bar: Any = Progress(
            TextColumn("[bold]batch"),
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            console=Console(file=stream),
            refresh_per_second=4,
        )
        self._task = self._bar.add_task("batch", total=total, status="")
        self._bar.start()

    def tick(self, stats: BatchStats) -> None:
        """Move the bar."""
        rate, eta = _rate_and_eta(stats)
        when = f" ETA {_duration(eta)}" if eta is not None else ""
        status = (
            f"{rate:.1f}/s{when} | tok {_count(stats.prompt_tokens)} in/{_count(stats.completion_tokens)} out "
            f"| {stats.failed:,} err | {stats.rate_limited:,} 429s"
        )
        self._bar.update(self._task, completed=stats.finished, total=stats.total, status=status)

    def close(self, stats: BatchStats) -> None:
        """Draw the last state and leave the bar on screen."""
        self.tick(stats)
        self._bar.stop()


def make_progress(mode: ProgressMode | bool, stream: TextIO, total: int | None) -> Progress:
    """The display for `mode`: `auto` draws a `rich` bar on a terminal when `rich` is
    installed, else plain lines; True means `auto`, False `none`."""
    if mode is False or mode == "none":
        return NoProgress()
    if mode == "plain":
        return PlainProgress(stream)
    if mode == "rich" or stream.isatty():
        try:
            return _RichProgress(stream, total)
        except ImportError:
            if mode == "rich":
                raise
    return PlainProgress(stream)


def format_summary(summary: BatchSummary, *, output: str | None = None, errors: str | None = None) -> str:
    """The end-of-job summary: counts, tokens, wall time, p50/p95 latency, why it stopped."""
    finished = summary.succeeded + summary.failed
    lines = [
        f"batch: {finished:,} requests in {_duration(summary.wall_time)} ({summary.throughput:.1f}/s): "
        f"{summary.succeeded:,} succeeded, {summary.failed:,} failed"
        + (f" (in {errors})" if summary.failed and errors else "")
    ]
    skipped = []
    if summary.done_before:
        skipped.append(f"{summary.done_before:,} already done")
    if summary.invalid:
        skipped.append(f"{summary.invalid:,} invalid or duplicate lines")
    if skipped:
        lines.append("  skipped: " + ", ".join(skipped))
    latency = ""
    if summary.p50_latency is not None and summary.p95_latency is not None:
        latency = f"; latency p50 {summary.p50_latency:.2f}s, p95 {summary.p95_latency:.2f}s"
    lines.append(f"  tokens: {summary.prompt_tokens:,} in, {summary.completion_tokens:,} out{latency}")
    lines.append(
        f"  429s absorbed: {summary.rate_limited:,}; retries: {summary.retries:,}; requeued: {summary.requeued:,}"
    )
    if summary.not_sent:
        lines.append(f"  not sent: {summary.not_sent:,} (a re-run sends them)")
    if output:
        lines.append(f"  output: {output}" + (f", errors: {errors}" if errors else ""))
    return "\n".join(lines)
