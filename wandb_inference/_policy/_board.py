"""`Board`: what the clients of one project on this machine hold of a model's limit.

Processes of one project on one machine (a multiprocessing pool, several notebooks, the
workers of one Ray node) share the service's limit on requests in flight, and each sees
only its own answers: alone, AIMD leaves their shares to chance over a few dozen rounds
(`_aimd.py`). So the clients of a machine tell each other their levels. Each
(base URL, project, model) has a small file in a private directory, mapped into memory;
each client's gate has a slot in it, where it writes its level and when it last had as
many in flight as its level allowed ("full"). The gate reads the board at most every
`_READ_EVERY` seconds and gives the policy the mean level of the clients that are full
(`AIMDLimit.share`; inf when no other client is) and how many they are (`peers`): a
client above the mean gives a slot back instead of probing, one below it probes, so the
shares meet within a few rounds instead of drifting, and those at it probe `peers` times
less often, so the machine's clients meet as few refusals as one client would
(`benchmarks/report/concurrency-design.md`: the measurements). It also counts the other
clients of the project with a live slot, idle or not (`others`): a client with none
20 ms after its first request takes the lone start (`_aimd.py`, "The start").

Nothing else is shared: each client still finds the limit from its own answers, clients
on other machines still share by AIMD alone, and a board that cannot be used (no
`fcntl` (Windows), a directory that is not private, a full board, its lock held by a
hung process past `_LOCK_WAIT`, any `OSError`) is
simply not used (a directory the user named: said once, as a log warning).
`WANDB_INFERENCE_PEER_DIR` names the directory (default: a `wandb-inference-<uid>`
directory in the temporary directory); `off` turns boards off.
The file holds no key, prompt or name: the base URL, project and model only reach its
name through a hash.

A slot is 32 bytes: a token (the owner's random id; 0: free), the owner's last write and
the last time it was full (wall-clock seconds, comparable between processes), and its
level. A slot whose owner wrote nothing for `_STALE` seconds may be taken by a new
client (its owner, if alive, takes another at its next write).
"""

from __future__ import annotations

import hashlib
import logging
import math
import mmap
import os
import secrets
import stat
import struct
import tempfile
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._aimd import AIMDLimit

__all__ = ["ENV_PEER_DIR", "Board", "open_board"]

ENV_PEER_DIR = "WANDB_INFERENCE_PEER_DIR"
_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_SLOT = struct.Struct("<Qddd")  # token, written at, full at, level
_SLOTS = 64
_SIZE = _SLOT.size * _SLOTS
# Read the others' slots at most this often (seconds); write ours at least this often.
_READ_EVERY = 0.01
_WRITE_EVERY = 0.25
# A slot unwritten this long is free to take.
_STALE = 30.0
# The longest wait for the file's lock (taking a slot), in seconds: then no board.
_LOCK_WAIT = 0.2
# A client counts as full when it was, lately: within this many of its rounds (at least
# `_FULL_MIN` seconds). A full client is full again at each request it sends (about
# `level` times a round), and one whose work ran out leaves the others' mean a round later.
_FULL_ROUNDS = 1.0
_FULL_MIN = 0.05


def _directory(chosen: str) -> Path:
    """The private directory of the boards (`chosen`, or the default one)."""
    uid = os.getuid()
    path = Path(chosen) if chosen else Path(tempfile.gettempdir()) / f"wandb-inference-{uid}"
    path.mkdir(mode=0o700, parents=bool(chosen), exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        # Someone else's, a link, or open to others: not ours to trust.
        raise OSError(f"{path} is not a directory of this user's alone (mode 0700, not a link)")
    return path


_warned = False


def _refused(chosen: str, error: Exception) -> None:
    """Say once (a log warning) that the directory the user named cannot be used; the
    default one failing is not the user's doing, and goes unsaid."""
    global _warned
    if chosen and not _warned:
        _warned = True
        logging.getLogger("wandb_inference").warning(
            "%s=%s cannot be used (%s): clients share limits without the machine's board", ENV_PEER_DIR, chosen, error
        )


def _free(view: mmap.mmap, where: list[int], token: int, pid: int) -> None:
    """Give the slot (at `where[0]`) back, at exit or when the board is dropped or
    fails; in the process that took it only (not in a forked child)."""
    if os.getpid() != pid or view.closed:
        return
    try:
        offset = where[0]
        if offset >= 0 and _SLOT.unpack_from(view, offset)[0] == token:
            _SLOT.pack_into(view, offset, 0, 0.0, 0.0, 0.0)
        view.close()
    except (OSError, ValueError, BufferError):  # pragma: no cover - closing at exit
        pass


class Board:
    """This client's slot in the board of one (base URL, project, model)."""

    __slots__ = (
        "__weakref__",
        "_finalizer",
        "_full",
        "_level",
        "_path",
        "_pid",
        "_read_at",
        "_token",
        "_view",
        "_where",
        "_written_at",
    )

    def __init__(self, path: Path) -> None:
        self._path = path
        self._pid = os.getpid()
        self._token = secrets.randbits(63) | 1
        self._view = self._map()
        self._where = [self._claim()]
        self._read_at = -math.inf
        self._written_at = -math.inf
        self._level = self._full = -1.0
        self._finalizer = weakref.finalize(self, _free, self._view, self._where, self._token, self._pid)

    def _map(self) -> mmap.mmap:
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT | _FLAGS, 0o600)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                raise OSError(f"{self._path}: not a board of ours")
            if info.st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            return mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)

    def _claim(self) -> int:
        """Take a free (or stale) slot, under the file's lock; its offset."""
        import fcntl

        fd = os.open(self._path, os.O_RDWR | _FLAGS)
        try:
            # Held for microseconds; but never wait on a holder that hangs (stopped, say).
            deadline = time.monotonic() + _LOCK_WAIT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise OSError(f"{self._path}: locked for over {_LOCK_WAIT} s") from None
                    time.sleep(0.001)
            now = time.time()
            for offset in range(0, _SIZE, _SLOT.size):
                token, written, _, _ = _SLOT.unpack_from(self._view, offset)
                if token == 0 or not now - _STALE <= written <= now + _STALE:
                    _SLOT.pack_into(self._view, offset, self._token, now, 0.0, 0.0)
                    return offset
            raise OSError(f"{self._path}: every slot taken")
        finally:
            os.close(fd)  # (closing releases the lock)

    def sync(self, limit: AIMDLimit, now: float, *, read: bool = False) -> None:
        """Write `limit`'s level (and when it was last full) into our slot, and read the
        others' into `limit.share` and `limit.others`, each at most as often as it
        matters (`now`: the gate's monotonic clock; `read`: read now). A board that
        fails is not used again."""
        if self._view.closed:
            return
        try:
            self._sync(limit, now, read)
        except (OSError, ValueError):
            limit.share, limit.peers, limit.others = math.inf, 1, 0
            self.close()

    def _sync(self, limit: AIMDLimit, now: float, read: bool) -> None:
        level = limit.limit if math.isfinite(limit.limit) else 0.0
        since = now - self._written_at
        if since >= _WRITE_EVERY or level != self._level or (limit.full_at != self._full and since >= _READ_EVERY):
            self._write(level, limit.full_at, now)
        if now - self._read_at < _READ_EVERY and not read:
            return
        self._read_at = now
        wall = time.time()
        recent = wall - max(_FULL_MIN, _FULL_ROUNDS * limit.round_time)
        levels: list[float] = []
        others = False
        present = 0
        mine = self._where[0]
        for at, (token, written, full, theirs) in enumerate(_SLOT.iter_unpack(self._view)):
            own = at * _SLOT.size == mine
            if not token or not (own or wall - _STALE <= written <= wall + 1.0):
                continue
            present += 0 if own else 1  # another client of the project here (idle or not)
            if full >= recent and theirs >= 1:
                levels.append(theirs)
                others = others or not own
        limit.share = sum(levels) / len(levels) if others else math.inf
        limit.peers = len(levels) if others else 1
        limit.others = present

    def _write(self, level: float, full: float, now: float) -> None:
        wall = time.time()
        where = self._where
        if _SLOT.unpack_from(self._view, where[0])[0] != self._token:
            where[0] = -1
            where[0] = self._claim()  # a client took us for gone and took the slot
        _SLOT.pack_into(self._view, where[0], self._token, wall, wall - (now - full), level)
        self._written_at, self._level, self._full = now, level, full

    def close(self) -> None:
        """Give the slot back now (idempotent)."""
        self._finalizer()


def open_board(base_url: str, project: str | None, model: str) -> Board | None:
    """This client's slot on the board of (base URL, project, model), or None when there
    is no usable board (turned off, no `fcntl`, not private, full, an `OSError`)."""
    chosen = os.environ.get(ENV_PEER_DIR, "").strip()
    if chosen.lower() == "off":
        return None
    try:
        import fcntl  # noqa: F401  (POSIX only: owners to check, and locks)
    except ImportError:  # pragma: no cover - Windows
        return None
    try:
        directory = _directory(chosen)
        name = hashlib.sha256(f"{base_url}\n{project or ''}\n{model}".encode()).hexdigest()[:32]
        return Board(directory / f"{name}.v1.board")  # (v1: the slot layout above)
    except (OSError, ValueError) as error:
        _refused(chosen, error)
        return None
