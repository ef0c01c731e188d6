"""A batch job's results files: read for what is done, then appended to, exactly once.

A `custom_id` is done when its line, newline included, is in the output or the errors
file; a run sends only lines that are not done, each once, and writes each result with
one `write()` of the whole line on a file opened in append mode (no user-space buffer: a
line is in the OS as soon as its request finished), `fsync` at least once a second while
lines are being written and when the files close. So a `kill -9` at any moment loses at
most the requests in flight (the re-run sends them) and can leave at most one torn last
line, which the next run cuts off (`read_done`): never a duplicate, never a lost result. A
lock (`flock`) on the output file keeps two runs from writing the same job at once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, final

import attrs

from wandb_inference._exceptions import BatchFileError

from ._input import custom_id_of

__all__ = ["FileState", "ResultFiles", "read_done"]

SYNC_INTERVAL: Final = 0.75  # seconds; checked every 0.25 s: a line waits at most 1 s for its fsync
# The start of the lines this module writes: `{"id":"batch_req_<32 hex>","custom_id":`.
_PREFIX: Final = '{"id":"batch_req_'
_PREFIX_LEN: Final = len(_PREFIX) + 32 + len('","custom_id":')
_DECODER: Final = json.JSONDecoder()


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
    return custom_id_of(data) if isinstance(data, dict) and ("response" in data or "error" in data) else None


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
