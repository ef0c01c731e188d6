"""What the async and sync batch drivers share: opening a file job, checking one
(`BatchCheck`, the dry run), turning in-memory items into requests, the summary."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, final

import attrs

from wandb_inference._exceptions import BatchFileError, InvalidRequestError

from ._files import ResultFiles, read_done
from ._input import InputScan, scan_input
from ._request import BatchRequest, call_arguments
from ._result import BatchResult
from ._summary import BatchStats

if TYPE_CHECKING:
    from ._dispatch import Dispatcher
    from ._summary import BatchSummary

__all__ = [
    "BatchCheck",
    "BatchControl",
    "FileJob",
    "check_files",
    "default_errors_path",
    "open_job",
    "summarise",
    "to_request",
]

_SHOWN_PROBLEMS: Final = 20
StrPath = str | os.PathLike[str]


class _Controllable(Protocol):
    @property
    def dispatcher(self) -> Dispatcher: ...
    def wake(self) -> None: ...
    def cancel(self) -> None: ...


@final
class BatchControl:
    """Stops a running job from outside (the CLI's Ctrl-C): `stop()` lets requests in
    flight finish and be written; `cancel()` abandons them (a re-run sends them)."""

    def __init__(self) -> None:
        self._engine: _Controllable | None = None
        self.stopping = False
        self.cancelled = False

    def stop(self) -> None:
        """Start nothing more; in-flight requests finish and are written."""
        self.stopping = True
        if self._engine is not None:
            self._engine.dispatcher.stop("interrupted")
            self._engine.wake()

    def cancel(self) -> None:
        """Cancel the requests in flight too (their results are not written)."""
        self.stopping = self.cancelled = True
        if self._engine is not None:
            self._engine.dispatcher.stop("interrupted")
            self._engine.cancel()

    def attach(self, engine: _Controllable) -> None:
        """Bind to a starting job (a stop or cancel asked for before applies now)."""
        self._engine = engine
        if self.stopping:
            engine.dispatcher.stop("interrupted")
        if self.cancelled:
            engine.cancel()

    @property
    def in_flight(self) -> int:
        """Requests in flight now."""
        return 0 if self._engine is None else self._engine.dispatcher.in_flight


def default_errors_path(output: Path) -> Path:
    """`out.jsonl` -> `out.errors.jsonl` (beside the output)."""
    if output.suffix in (".jsonl", ".json", ".ndjson"):
        return output.with_name(f"{output.stem}.errors{output.suffix}")
    return output.with_name(f"{output.name}.errors.jsonl")


def _paths(input: StrPath, output: StrPath, errors: StrPath | None) -> tuple[Path, Path, Path]:
    source, out = Path(input), Path(output)
    err = Path(errors) if errors is not None else default_errors_path(out)
    for path in (out, err):
        if path.exists() and source.exists() and path.resolve() == source.resolve():
            raise BatchFileError(f"the input file cannot also be the output or errors file ({source})")
    return source, out, err


def problems_error(scan: InputScan, source: Path) -> BatchFileError:
    """The error listing bad input lines (the first 20 in the message, all in `problems`)."""
    shown = [
        f"  line {line}" + (f" ({custom_id!r})" if custom_id else "") + f": {message}"
        for line, custom_id, message in scan.problems[:_SHOWN_PROBLEMS]
    ]
    more = scan.problem_count - len(shown)
    if more > 0:
        shown.append(f"  ... and {more:,} more")
    return BatchFileError(
        f"{source}: {scan.problem_count:,} invalid or duplicate line(s); nothing was sent. Fix them, or "
        "skip them with --skip-invalid (skip_invalid=True):\n" + "\n".join(shown),
        problems=scan.problems,
    )


@final
@attrs.frozen(kw_only=True)
class BatchCheck:
    """What a batch job would do (`client.batch.check(...)`, `wandb-inference batch --dry-run`).

    Attributes:
        lines: non-blank input lines.
        to_send: valid lines with no result yet: what a run would send.
        done: lines that already have a result in the output or errors file.
        problems: `(line, custom_id or None, message)` of the first 1000 bad lines.
        problem_count: invalid or duplicate lines in all.
        endpoints / models: lines to send per endpoint URL and per model.
        repair: bytes of a torn last line a run would cut off, per results file.
        foreign_done: results whose `custom_id` the input does not have (another job's file?).
    """

    lines: int
    to_send: int
    done: int
    problems: tuple[tuple[int, str | None, str], ...]
    problem_count: int
    endpoints: dict[str, int]
    models: dict[str, int]
    repair: dict[str, int]
    foreign_done: int

    @property
    def ok(self) -> bool:
        """No invalid or duplicate line."""
        return self.problem_count == 0


def check_files(
    input: StrPath, output: StrPath, errors: StrPath | None, *, model: str | None, retry_errors: bool
) -> BatchCheck:
    """Read the files like a run would, change nothing, and say what a run would do.

    Raises:
        BatchFileError: a file cannot be read, or a results file is corrupt in the middle.
    """
    source, out, err = _paths(input, output, errors)
    files = ResultFiles(out, err, dry_run=True)
    done = files.done
    if retry_errors:  # the lines in the errors file would be sent again
        done = set()
        read_done(out, None, done)
    scan = scan_input(source, model=model, done=done)
    repair = {str(state.path): state.repaired_bytes for state in (files.output_state, files.errors_state)}
    return BatchCheck(
        lines=scan.lines,
        to_send=scan.to_send,
        done=scan.done,
        problems=scan.problems,
        problem_count=scan.problem_count,
        endpoints=scan.endpoints,
        models=scan.models,
        repair={path: size for path, size in repair.items() if size},
        foreign_done=scan.foreign_done,
    )


@final
@attrs.define
class FileJob:
    """An opened file job: its files (locked), what the first pass found, its counts."""

    source: Path
    files: ResultFiles
    scan: InputScan
    stats: BatchStats


def open_job(
    input: StrPath,
    output: StrPath,
    errors: StrPath | None,
    *,
    model: str | None,
    skip_invalid: bool,
    retry_errors: bool,
) -> FileJob:
    """Open (lock, repair) the results files and check the input: all before sending.

    Raises:
        BatchFileError: bad input lines (unless `skip_invalid`), unreadable or corrupt
            files, a results file locked by another job.
    """
    source, out, err = _paths(input, output, errors)
    files = ResultFiles(out, err, retry_errors=retry_errors)
    try:
        scan = scan_input(source, model=model, done=files.done)
        if scan.problem_count and not skip_invalid:
            raise problems_error(scan, source)
    except BaseException:
        files.close()
        raise
    stats = BatchStats(total=scan.to_send)
    stats.done_before = scan.done
    stats.invalid = scan.problem_count
    stats.notes.extend(_notes(files, scan, err))
    return FileJob(source=source, files=files, scan=scan, stats=stats)


def _notes(files: ResultFiles, scan: InputScan, errors: Path) -> list[str]:
    notes = []
    for state in (files.output_state, files.errors_state):
        if state.repaired_bytes:
            notes.append(
                f"cut a torn last line ({state.repaired_bytes} bytes) off {state.path}: its request is sent again"
            )
        if state.duplicates:
            notes.append(f"{state.path} repeats {state.duplicates} custom_id(s) (kept; not sent again)")
    if scan.foreign_done:
        notes.append(
            f"{scan.foreign_done} result(s) in the output/errors files are for custom_ids the input does not "
            "have: another job's files?"
        )
    if files.retried:
        notes.append(f"moved the previous errors file to {errors.name}.retried: its lines are sent again")
    return notes


def _guess_id(item: object) -> str:
    custom_id = item.get("custom_id") if isinstance(item, Mapping) else getattr(item, "custom_id", None)
    return custom_id if isinstance(custom_id, str) else ""


def to_request(item: object, position: int, model: str | None, seen: set[str]) -> BatchRequest | BatchResult:
    """An in-memory item as a request, or as a failed result when it is invalid or its
    `custom_id` came before (such items are not sent)."""
    try:
        if isinstance(item, BatchRequest):
            request = item
            if model is not None or request.line is None:
                body: Mapping[str, Any] = request.body if model is None else {**request.body, "model": model}
                request = attrs.evolve(request, body=body, line=request.line or position)
            call_arguments(request, check=True)
        elif isinstance(item, Mapping):
            request = BatchRequest.from_line(item, line_number=position, model=model)
        else:
            raise InvalidRequestError(
                f"a batch request must be a BatchRequest or a dict like an OpenAI batch line, not {type(item).__name__}"
            )
    except InvalidRequestError as exc:
        return BatchResult(custom_id=_guess_id(item), error=exc, line=position)
    if request.custom_id in seen:
        error = InvalidRequestError(f"duplicate custom_id {request.custom_id!r}: not sent")
        return BatchResult(custom_id=request.custom_id, error=error, line=position)
    seen.add(request.custom_id)
    return request


def summarise(stats: BatchStats, dispatcher: Dispatcher, *, cancelled: bool = False) -> BatchSummary:
    """The summary: `not_sent` counts what was left (of a known total, or taken from the source)."""
    if stats.total is not None:
        not_sent = max(0, stats.total - stats.finished - stats.invalid_in_total)
    else:
        not_sent = dispatcher.unsent() + dispatcher.in_flight
    stopped = "cancelled" if cancelled else dispatcher.stopped
    return stats.summary(not_sent=not_sent, stopped=stopped, error=dispatcher.error)
