"""A batch job's input, read as a stream, twice: checked (`scan_input`), then sent
(`iter_requests`).

The input is never loaded whole: the first pass checks every line and keeps only a 64-bit
hash of each `custom_id` (8 bytes a line, to find repeats; a third pass, only when two
hashes match, compares the strings) and the numbers of bad lines; the second reads it
again and yields the requests to send.
"""

from __future__ import annotations

import heapq
import json
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Final, final

import attrs

from wandb_inference._exceptions import BatchFileError, InvalidRequestError

from ._request import BatchRequest

__all__ = ["InputScan", "custom_id_of", "iter_requests", "scan_input"]

_MAX_PROBLEMS: Final = 1000  # problems kept with their messages (all are counted)
_RUN: Final = 1 << 16  # custom_id hashes sorted per run of this many


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


def custom_id_of(data: object) -> str | None:
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
        custom_id = custom_id_of(data)
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
        custom_id = custom_id_of(data)
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
        custom_id = custom_id_of(data)
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
