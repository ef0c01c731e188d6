"""A batch job's files: the input read twice (checked, then sent), results appended.

Exactly once on disk. A `custom_id` is done when its line, newline included, is in the
output or the errors file; a run sends only lines that are not done, each once, and
writes each result with one `write()` of the whole line on a file opened in append mode
(no user-space buffer: a line is in the OS as soon as its request finished), `fsync`
at least once a second while lines are being written and when the files close. So a
`kill -9` at any moment loses at most the requests in flight (the re-run sends them) and
can leave at most one torn last line, which the next run cuts off (`_repair`): never a
duplicate, never a lost result. A lock (`flock`) on the output file keeps two runs from
writing the same job at once.

The input is streamed, never loaded whole: the first pass checks every line and keeps
only a 64-bit hash of each `custom_id` (8 bytes a line, to find repeats; a third pass,
only when two hashes match, compares the strings) and the numbers of bad lines; the
second reads it again and sends.
"""

from __future__ import annotations

import heapq
import json
import os
import time
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final, final

import attrs

from wandb_inference._exceptions import BatchFileError, InvalidRequestError

from ._request import BatchRequest

__all__ = ["FileState", "InputScan", "ResultFiles", "iter_requests", "read_done", "scan_input"]

SYNC_INTERVAL: Final = 0.75  # seconds; checked every 0.25 s: a line waits at most 1 s for its fsync
_MAX_PROBLEMS: Final = 1000  # problems kept with their messages (all are counted)
_RUN: Final = 1 << 16  # custom_id hashes sorted per run of this many
# The start of the lines this module writes: `{"id":"batch_req_<32 hex>","custom_id":`.
_PREFIX: Final = '{"id":"batch_req_'
_PREFIX_LEN: Final = len(_PREFIX) + 32 + len('","custom_id":')
_DECODER: Final = json.JSONDecoder()


@final
@attrs.frozen(kw_only=True)
class InputScan:
    """What the first pass over an input file found.

    Attributes:
        lines: non-blank lines.
        to_send: valid lines not done yet.
        done: valid lines whose `custom_id` already has a result in the output or errors file.
        bad_lines: line numbers of invalid lines and of repeated `custom_id`s.
        problems: `(line, custom_id or None, message)` for the first 1000 bad lines.
        problem_count: how many bad lines in all.
        endpoints: lines to send per endpoint URL.
        models: lines to send per model.
        foreign_done: `custom_id`s in the output/errors files that the input does not have.
    """

    lines: int
    to_send: int
    done: int
    bad_lines: frozenset[int]
    problems: tuple[tuple[int, str | None, str], ...]
    problem_count: int
    endpoints: dict[str, int]
    models: dict[str, int]
    foreign_done: int


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of the non-blank lines of a file, streamed."""
    try:
        handle: IO[bytes] = path.open("rb")
    except OSError as exc:
        raise BatchFileError(f"cannot read the input file {str(path)!r}: {exc.strerror or exc}") from None
    with handle:
        for number, raw in enumerate(handle, 1):
            if raw.strip():
                yield number, raw


def _custom_id_of(data: object) -> str | None:
    if isinstance(data, dict):
        value = data.get("custom_id")
        if isinstance(value, str) and value:
            return value
    return None


def _parse(raw: bytes) -> tuple[Any, str | None]:
    try:
        return json.loads(raw), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"not a JSON object ({exc})"


class _IdHashes:
    """The 64-bit hashes of the input's `custom_id`s, 8 bytes each (a set of the strings
    takes ~90 bytes each: 90 MB per million lines), kept as sorted runs so that repeated
    ones come out of one merge. A hash seen twice is only a candidate: the third pass
    compares the strings."""

    def __init__(self) -> None:
        self._runs: list[array[int]] = []
        self._current: array[int] = array("q")

    def add(self, custom_id: str) -> None:
        self._current.append(hash(custom_id))
        if len(self._current) >= _RUN:
            self._flush()

    def _flush(self) -> None:
        if self._current:
            self._runs.append(array("q", sorted(self._current)))
            self._current = array("q")

    def repeated(self) -> set[int]:
        """The hashes seen more than once."""
        self._flush()
        out: set[int] = set()
        previous: int | None = None
        for value in heapq.merge(*self._runs):
            if value == previous:
                out.add(value)
            previous = value
        return out


def _judge(
    data: Any, why: str | None, custom_id: str | None, number: int, model: str | None, done: set[str]
) -> tuple[str, BatchRequest | str | None]:
    """A line's fate: ("done", None), ("bad", why) or ("send", request)."""
    if custom_id is not None and custom_id in done:
        return "done", None
    if why is not None:
        return "bad", why
    try:
        return "send", BatchRequest.from_line(data, line_number=number, model=model)
    except InvalidRequestError as exc:
        return "bad", str(exc)


@final
@attrs.define
class _Tally:
    count: int = 0
    to_send: int = 0
    done: int = 0
    bad: set[int] = attrs.field(factory=set)
    problems: list[tuple[int, str | None, str]] = attrs.field(factory=list)
    endpoints: dict[str, int] = attrs.field(factory=dict)
    models: dict[str, int] = attrs.field(factory=dict)

    def problem(self, number: int, custom_id: str | None, message: str) -> None:
        self.bad.add(number)
        self.problems.append((number, custom_id, message))
        if len(self.problems) > 2 * _MAX_PROBLEMS:  # keep the first ones (by line) only
            self.problems.sort()
            del self.problems[_MAX_PROBLEMS:]

    def count_request(self, request: BatchRequest, sign: int) -> None:
        self.to_send += sign
        self.endpoints[request.url] = self.endpoints.get(request.url, 0) + sign
        name = request.model or "?"
        self.models[name] = self.models.get(name, 0) + sign


def scan_input(path: Path, *, model: str | None, done: set[str]) -> InputScan:
    """The first pass: check every line, find repeated `custom_id`s, count what is to send.

    Memory: 8 bytes per line (the `custom_id` hashes) beside `done`; the lines themselves
    are read one at a time.

    Args:
        path: the input file.
        model: the model that replaces every line's (None: each line's own).
        done: the `custom_id`s that already have a result.

    Raises:
        BatchFileError: the file cannot be read.
    """
    tally = _Tally()
    hashes = _IdHashes()
    for number, raw in _lines(path):
        tally.count += 1
        data, why = _parse(raw)
        custom_id = _custom_id_of(data)
        if custom_id is not None:
            hashes.add(custom_id)
        fate, detail = _judge(data, why, custom_id, number, model, done)
        if fate == "done":
            tally.done += 1
        elif fate == "send":
            assert isinstance(detail, BatchRequest)
            tally.count_request(detail, +1)
        else:
            tally.problem(number, custom_id, str(detail))
    candidates = hashes.repeated()
    del hashes
    if candidates:
        _find_repeats(path, candidates, model, done, tally)
    tally.problems.sort()
    return InputScan(
        lines=tally.count,
        to_send=tally.to_send,
        done=tally.done,
        bad_lines=frozenset(tally.bad),
        problems=tuple(tally.problems[:_MAX_PROBLEMS]),
        problem_count=len(tally.bad),
        endpoints={k: v for k, v in tally.endpoints.items() if v},
        models={k: v for k, v in tally.models.items() if v},
        foreign_done=len(done) - tally.done,
    )


def _find_repeats(path: Path, candidates: set[int], model: str | None, done: set[str], tally: _Tally) -> None:
    """The third pass, only when two `custom_id`s hashed alike: each repeat after the first
    becomes a problem naming the first line, and what the first pass counted for it is
    taken back."""
    first: dict[str, int] = {}
    for number, raw in _lines(path):
        data, why = _parse(raw)
        custom_id = _custom_id_of(data)
        if custom_id is None or hash(custom_id) not in candidates:
            continue
        if custom_id not in first:
            first[custom_id] = number
            continue
        fate, detail = _judge(data, why, custom_id, number, model, done)
        if fate == "done":
            tally.done -= 1
        elif fate == "send":
            assert isinstance(detail, BatchRequest)
            tally.count_request(detail, -1)
        else:
            continue  # already a problem of its own
        tally.problem(number, custom_id, f"duplicate custom_id {custom_id!r} (first on line {first[custom_id]})")


def iter_requests(
    path: Path, *, model: str | None, done: set[str], skip: frozenset[int]
) -> Iterator[BatchRequest | tuple[int, str]]:
    """The second pass: the requests to send, in file order.

    Lines in `skip` (found bad by the first pass) and lines whose `custom_id` is done are
    passed over. A line that turned bad since the first pass (the file changed) comes out
    as `(line number, message)` and is not sent.
    """
    for number, raw in _lines(path):
        if number in skip:
            continue
        data, why = _parse(raw)
        custom_id = _custom_id_of(data)
        if custom_id is not None and custom_id in done:
            continue
        if why is not None:
            yield number, why
            continue
        try:
            yield BatchRequest.from_line(data, line_number=number, model=model)
        except InvalidRequestError as exc:
            yield number, str(exc)


# --------------------------------------------------------------------------- output


@final
@attrs.define
class FileState:
    """What reading an output (or errors) file found."""

    path: Path
    lines: int = 0
    repaired_bytes: int = 0  # a torn last line cut off (or, in a dry run, to cut off)
    duplicates: int = 0


def read_done(path: Path, fd: int | None, done: set[str]) -> FileState:
    """Add the `custom_id`s of a results file to `done`; cut off a torn end (when `fd`).

    A torn end is what a killed write or a power loss leaves after the last whole result:
    part of one line (no newline) and zero bytes. Anything else is not cut: a whole line
    that is not a result is a corrupt file, or not this job's output at all.

    Raises:
        BatchFileError: a line that is not a result, followed by good lines (the file is
            corrupt in the middle), or a whole line at the end that is not a result.
    """
    state = FileState(path)
    good_end = 0
    offset = 0
    bad_line: int | None = None
    whole_bad_line: int | None = None  # a bad line that a torn write cannot explain
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return state
    with handle:
        for number, raw in enumerate(handle, 1):
            offset += len(raw)
            custom_id = _result_id(raw) if raw.endswith(b"\n") else None
            if custom_id is None:
                if raw.strip() or not raw.endswith(b"\n"):
                    bad_line = bad_line or number
                    if raw.endswith(b"\n") and raw.replace(b"\x00", b"").strip():
                        whole_bad_line = whole_bad_line or number
                continue
            if bad_line is not None:
                raise BatchFileError(
                    f"{path}: line {bad_line} is not a batch result but later lines are: the "
                    "file is corrupt; fix or remove that line, then run again"
                )
            good_end = offset
            state.lines += 1
            if custom_id in done:
                state.duplicates += 1
            done.add(custom_id)
    if whole_bad_line is not None:
        raise BatchFileError(
            f"{path}: line {whole_bad_line} is a whole line but not a batch result (not a write cut "
            "short): is this the results file of this job? Fix or remove that line, then run again"
        )
    if offset > good_end:
        state.repaired_bytes = offset - good_end
        if fd is not None:
            os.ftruncate(fd, good_end)
            os.fsync(fd)
    return state


def _result_id(raw: bytes) -> str | None:
    """The `custom_id` of a whole result line, or None if it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if text.startswith(_PREFIX) and len(text) > _PREFIX_LEN and text.rstrip().endswith("}"):
        # A line this module wrote: decode the one string after the fixed prefix.
        try:
            value, _ = _DECODER.raw_decode(text, _PREFIX_LEN)
        except ValueError:
            value = None
        if isinstance(value, str) and value:
            return value
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return _custom_id_of(data) if isinstance(data, dict) and ("response" in data or "error" in data) else None


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BatchFileError(
            f"another batch job is writing to {path} (it holds its lock): wait for it to end, "
            "or stop it, before running this one"
        ) from None


def _os_fsync(fd: int) -> None:
    os.fsync(fd)  # looked up when called (a test can watch `os.fsync`)


def _sync_dir(path: Path) -> None:
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@final
class ResultFiles:
    """The output and errors files of a job: read for what is done, then appended to.

    Args:
        output: the output file (successes).
        errors: the errors file (failures).
        retry_errors: move the errors file aside to `<errors>.retried` first, so that
            the lines that failed are sent again.
        dry_run: read only: create, repair and lock nothing.
        fsync / clock: injectable for tests (`os.fsync`, `time.monotonic`).

    Raises:
        BatchFileError: a file is corrupt in the middle, locked by another job, cannot be
            opened, or the two paths are the same file.
    """

    def __init__(
        self,
        output: Path,
        errors: Path,
        *,
        retry_errors: bool = False,
        dry_run: bool = False,
        fsync: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if output.resolve() == errors.resolve():
            raise BatchFileError(f"the output and errors files must differ (both are {output})")
        self.output = output
        self.errors = errors
        self.done: set[str] = set()
        self.dry_run = dry_run
        self._fds: dict[bool, int] = {}
        self._dirty: set[bool] = set()
        self._fsync = fsync or _os_fsync
        self._clock = clock
        self._last_sync = clock()
        try:
            if not dry_run:
                self._fds[True] = self._open(output)
                if retry_errors and errors.exists():
                    os.replace(errors, errors.with_name(errors.name + ".retried"))
                self._fds[False] = self._open(errors)
            self.output_state = read_done(output, self._fds.get(True), self.done)
            self.errors_state = read_done(errors, self._fds.get(False), self.done)
        except BaseException:
            self.close()
            raise
        self.retried = retry_errors and errors.with_name(errors.name + ".retried").exists()

    @staticmethod
    def _open(path: Path) -> int:
        created = not path.exists()
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise BatchFileError(f"cannot open {path} for writing: {exc.strerror or exc}") from None
        _lock(fd, path)
        if created:
            _sync_dir(path)
        return fd

    def write(self, record: dict[str, Any], *, ok: bool) -> None:
        """Append one result line (to the output when `ok`, else to the errors file)."""
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        fd = self._fds[ok]
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        self._dirty.add(ok)

    def sync(self, *, force: bool = False) -> None:
        """`fsync` the files written to since the last one, at most once a second unless `force`."""
        if not self._dirty:
            return
        now = self._clock()
        if not force and now - self._last_sync < SYNC_INTERVAL:
            return
        # Swap the set first: `write` may run in another thread while this one syncs.
        dirty, self._dirty = self._dirty, set()
        self._last_sync = now
        for ok in dirty:
            fd = self._fds.get(ok)
            if fd is not None:
                self._fsync(fd)

    def due(self) -> bool:
        """Whether lines wait for an `fsync` that is due now."""
        return bool(self._dirty) and self._clock() - self._last_sync >= SYNC_INTERVAL

    def close(self) -> None:
        """`fsync` and close (idempotent); the lock goes with the descriptor."""
        fds, self._fds = self._fds, {}
        for ok, fd in fds.items():
            try:
                if ok in self._dirty:
                    self._fsync(fd)
            finally:
                os.close(fd)
        self._dirty.clear()
