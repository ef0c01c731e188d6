"""Clients of one project on one machine tell each other their levels (`_board.py`), and
the policy moves toward the mean level of those that are full (`AIMDLimit.share`).

The board is a small memory-mapped file per (base URL, project, model) in a private
directory; `conftest.py` points `WANDB_INFERENCE_PEER_DIR` at each test's own directory.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import threading
import time
import warnings
from pathlib import Path

import anyio
import httpx
import pytest
from _helpers import API_KEY, MESSAGES, MODEL, completion_body, json_response
from _simservice import simulate
from test_adaptive_concurrency import REALISTIC, Driver, cut, level, serve

import wandb_inference as wi
from wandb_inference import AIMDLimit
from wandb_inference._policy import _board
from wandb_inference._policy._aimd import _CONTENDED_PROBE, _GENTLE_CUTS, _START_YIELD
from wandb_inference._policy._board import ENV_PEER_DIR, Board, open_board
from wandb_inference._policy._concurrency import Slot
from wandb_inference.server import LocalServer

pytestmark = pytest.mark.skipif(not hasattr(os, "getuid"), reason="boards need POSIX owners and fcntl")

URL = "https://api.example.test/v1"

# ------------------------------------------------------------------ the policy, told the share


def half_rounds(d: Driver, n: int) -> list[float]:
    """`n` half rounds of successes, each replaced; the limit after each."""
    seen = []
    for _ in range(n):
        for _ in range(max(1, math.ceil(_CONTENDED_PROBE * d.limit.limit))):
            d.succeed()
            d.fill()
        seen.append(d.limit.limit)
    return seen


def test_above_the_machines_share_a_client_gives_slots_back_instead_of_probing() -> None:
    """16 of ours in flight, while the others on this machine that are full hold 12 on
    average: a slot back at each half round where it would have probed, down to the
    share (never a probe above 16 meanwhile)."""
    d = level(16)
    d.limit.share = 12.0
    seen = half_rounds(d, 8)
    assert max(seen) <= 16
    assert seen[:4] == [15, 14, 13, 12]
    assert all(12 <= s <= 13 for s in seen[4:])


def test_below_the_share_probes_and_raises_stop_at_the_share() -> None:
    """A probe the service takes used to raise again at once (doubling while it holds);
    with others on the machine full at 10 on average, the raises stop there."""
    d = level(8)
    d.limit.share = 10.0
    seen = half_rounds(d, 40)  # the service takes every probe
    assert max(seen) <= 11
    assert all(10 <= s <= 11 for s in seen[-20:]), seen


def test_at_the_share_the_machines_clients_probe_as_often_as_one_would() -> None:
    """With 4 clients full on the machine, one at the mean probes every 4 half rounds
    (the machine's clients together meet as many refusals as one would: at 4 x 8, 16%
    of requests at steady state in the simulator, 28% when each probed every half
    round); one below the mean still probes every half round, to catch up."""

    def successes_per_probe(level_now: int, share: float) -> list[int]:
        d = level(level_now)
        d.limit.share, d.limit.peers = share, 4
        counts = []
        for _ in range(3):
            counts.append(d.refuse_next_probe()[0])  # full: refused (a gentle cut)
            d.limit.limit = d.limit.known = float(level_now)  # (back to the level)
        return counts

    half = math.ceil(_CONTENDED_PROBE * 8)
    assert successes_per_probe(8, 8.0)[1:] == [4 * half, 4 * half]
    assert successes_per_probe(8, 10.0)[1:] == [half, half]


def test_room_beyond_what_the_machine_held_when_refused_is_climbed_at_once() -> None:
    """Stopping at the share is right while the room a probe finds is what another client
    of the machine left (a cut). When the machine's clients together hold more than when
    the service last refused one of them, the room is new (the limit rose): the raises
    go on, doubling, as a lone client's do. Holding as much is not more: at steady state
    the machine holds what it held at the last refusal, and raising past the share then
    only moves slots from one client to another."""
    d = level(10)
    d.limit.share, d.limit.peers = 10.5, 4
    d.refuse_next_probe()  # refused while the machine held 42
    d.limit.share = 10.0  # it holds 40 now: someone was cut
    d.limit.limit = d.limit.known = 10.0
    capped = half_rounds(d, 12)
    assert max(capped) <= 11  # the room one of them left: stop at the share
    d.limit.share = 10.5  # it holds 42 again: no more than when refused, still capped
    assert max(half_rounds(d, 4)) <= 11
    d.limit.share = 11.25  # it holds 45, and the service takes more: new room
    grown = half_rounds(d, 12)
    assert max(grown) >= 20, grown


def test_a_refused_probe_with_no_other_full_keeps_what_the_machine_held() -> None:
    """The board may show no other client full at the moment a probe is refused (a
    level of a few slots, a write between reads). That says nothing of what the machine
    held: the last measure stands. (Recorded as "unknown", it held every later raise at
    the share: 4 processes on the local server took 2.3-3.3 s instead of about 1 s to
    follow a limit raised from 8 to 32, in 3 of 9 runs.)"""
    d = level(10)
    d.limit.share, d.limit.peers = 10.5, 4
    d.refuse_next_probe()  # refused while the machine held 42
    d.limit.share, d.limit.peers = math.inf, 1  # nobody else full this instant
    d.limit.limit = d.limit.known = 10.0
    d.refuse_next_probe()
    d.limit.share, d.limit.peers = 10.75, 4  # they hold 43: more than then, the room is new
    d.limit.limit = d.limit.known = 10.0
    grown = half_rounds(d, 12)
    assert max(grown) >= 20, grown


def test_clients_on_one_machine_follow_a_raised_limit_in_the_simulator() -> None:
    """4 clients on one machine, the limit raised from 16 to 64: 90% of it held within a
    second (apart: about 0.5 s; with the raises always stopped at the share, 4 s)."""

    def limit(t: float) -> int:
        return 16 if t < 3.0 else 64

    ups = []
    for seed in range(1, 5):
        run = simulate(limit, 64, 20000, clients=4, seed=seed, service=0.1, sample_every=0.01, board=True, **REALISTIC)
        assert run.failed == 0
        ups.append(next(t for t, held, _ in run.samples if t >= 3.0 and held >= 0.9 * 64) - 3.0)
    assert statistics.median(ups) <= 1.0, ups


def test_while_others_on_the_machine_are_full_the_client_stays_contended() -> None:
    """Alone, the same client leaves the contended start within a few cuts
    (`test_a_cut_whose_slots_others_take_keeps_the_client_contended`); with others full
    on the machine it does not, and a client that had left it enters it again."""
    d = level(16)
    d.limit.share = 16.0
    for _ in range(24):
        serve(d, 16, 1)
        assert d.limit.contended
    alone = level(16)
    limit: AIMDLimit = alone.limit  # (not `alone.limit`: mypy would keep it narrowed)
    while limit.contended:
        serve(alone, 16, 1)
    limit.share = 16.0
    serve(alone, 16, 1)
    assert limit.contended


def test_with_others_on_the_machine_every_refused_probe_cuts_gently() -> None:
    """The board evens the shares, so the cuts need not: past the first
    `_GENTLE_CUTS`, a refused probe still cuts to `_START_YIELD` (95%), not 80%."""
    d = level(20)
    d.limit.share = 20.0
    levels = []
    for _ in range(_GENTLE_CUTS + 3):
        _, before = d.refuse_next_probe()
        levels.append((before, d.limit.limit))
    assert all(after == cut(_START_YIELD, before) for before, after in levels), levels


def test_a_limit_held_by_its_ceiling_does_not_count_as_full() -> None:
    """A client held back by its own `max_concurrency` is not competing for the service's
    slots: counting it would pull the others down to its level."""
    capped = AIMDLimit(ceiling=4)
    for _ in range(4):
        capped.take(1.0)
    assert capped.full_at == -math.inf
    free = AIMDLimit()
    for _ in range(8):
        free.take(2.0)
    assert free.full_at == 2.0


def test_clients_on_one_machine_share_evenly_in_the_simulator() -> None:
    """The cases of `test_processes_started_with_skew_share_fairly`, the clients on one
    machine: fairness from the board, not from chance. (Apart, the typical run of 4 x 32
    is about 0.8 and one run in ten below 0.7.)"""
    for clients, limit in ((2, 32), (3, 48), (4, 8), (4, 32)):
        service = max(0.05, limit / 150)
        ratios, fairness = [], []
        for seed in range(1, 9):
            oracle = simulate(limit, 64, 1200, clients=clients, oracle=True, seed=seed, service=service)
            ours = simulate(limit, 64, 1200, clients=clients, seed=seed, service=service, board=True, **REALISTIC)
            assert ours.failed == 0
            ratios.append(oracle.elapsed / ours.elapsed)
            fairness.append(ours.fairness)
        assert statistics.median(ratios) >= 0.9, (clients, limit, ratios)
        assert statistics.median(fairness) >= 0.88 and min(fairness) >= 0.75, (clients, limit, fairness)


# ------------------------------------------------------------------ the board


def full(level: float, now: float) -> AIMDLimit:
    """A limit at `level`, full at `now`, answers taking 50 ms."""
    limit = AIMDLimit()
    limit.limit = level
    limit.full_at = now
    limit.round_time = 0.05
    return limit


def board() -> Board:
    opened = open_board(URL, "team/project", MODEL)
    assert opened is not None
    return opened


def test_boards_of_one_scope_see_each_others_levels() -> None:
    now = time.monotonic()
    a, b, c = board(), board(), board()
    la, lb, lc = full(10, now), full(6, now), full(30, now - 5)  # c: not full lately
    for bd, lim in ((a, la), (b, lb), (c, lc)):
        bd.sync(lim, now)
    for bd, lim in ((a, la), (b, lb), (c, lc)):
        bd.sync(lim, now + 0.02)  # (reads at most every 10 ms)
    assert la.share == lb.share == lc.share == 8.0
    assert la.peers == lb.peers == lc.peers == 2
    # Another model, or another project: another board.
    other = open_board(URL, "team/other", MODEL)
    assert other is not None
    lo = full(4, now)
    other.sync(lo, now)
    assert lo.share == math.inf
    # Alone among the full ones: no share.
    b.close()
    a.sync(la, now + 0.04)
    assert (la.share, la.peers) == (math.inf, 1)


def test_a_gate_alone_on_its_board_opens_the_lone_start_and_one_with_company_does_not() -> None:
    """The lone start (`_LONE_START` before any answer) is for a client with no other of
    its project on this machine's board `_LONE_WAIT` after its first request: a client
    started beside another keeps the fair start, 8 at a time."""
    from wandb_inference._policy._aimd import _INITIAL, _LONE_START, _LONE_WAIT
    from wandb_inference._policy._concurrency import SyncLimiter

    scope = (URL, "team/lone")
    first = SyncLimiter(math.inf, True, False, scope)
    held = [first.acquire(MODEL, None) for _ in range(_INITIAL)]
    assert first.room(MODEL) == 0
    second = SyncLimiter(math.inf, True, False, scope)  # started beside it
    theirs = [second.acquire(MODEL, None) for _ in range(_INITIAL)]
    time.sleep(_LONE_WAIT + 0.01)
    assert first.room(MODEL) == 0 and second.room(MODEL) == 0  # each sees the other
    # Alone: after `_LONE_WAIT`, a waiting thread starts at once (up to `_LONE_START`).
    lone = SyncLimiter(math.inf, True, False, (URL, "team/alone"))
    mine = [lone.acquire(MODEL, None) for _ in range(_INITIAL)]
    assert lone.room(MODEL) == 0
    started = time.monotonic()
    waiter: list[object] = []
    thread = threading.Thread(target=lambda: waiter.append(lone.acquire(MODEL, 5)))
    thread.start()
    thread.join(5)
    assert waiter and waiter[0] is not None
    assert _LONE_WAIT - 0.005 <= time.monotonic() - started < _LONE_WAIT + 0.5
    assert lone.room(MODEL) == _LONE_START - _INITIAL - 1
    for slot in held + theirs + mine + waiter:
        assert isinstance(slot, Slot)
        slot.finish()


def test_the_board_is_private_and_holds_no_name() -> None:
    bd = board()
    directory = Path(os.environ[ENV_PEER_DIR])
    (path,) = directory.iterdir()
    assert directory.stat().st_mode & 0o777 == 0o700
    assert path.stat().st_mode & 0o777 == 0o600
    data = path.read_bytes()
    for text in ("team", "project", "example", "Llama"):
        assert text not in path.name and text.encode() not in data
    bd.close()


def test_a_client_writes_no_key_to_its_board() -> None:
    """The whole path: a client's first request opens its board; neither the file's name
    nor its bytes hold the key, the base URL, the project or the model."""

    def handler(request: httpx.Request) -> httpx.Response:
        return json_response(200, completion_body())

    with wi.Client(
        API_KEY, base_url=URL, project="team/project", http_client=httpx.Client(transport=httpx.MockTransport(handler))
    ) as client:
        client.chat.create(model=MODEL, messages=MESSAGES)
        files = list(Path(os.environ[ENV_PEER_DIR]).iterdir())
        assert len(files) == 1
        for text in (API_KEY, "team/project", URL, MODEL):
            assert text not in files[0].name and text.encode() not in files[0].read_bytes()


def test_no_board_when_turned_off_or_not_private(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_PEER_DIR, "off")
    assert open_board(URL, None, MODEL) is None
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    monkeypatch.setenv(ENV_PEER_DIR, str(shared))
    assert open_board(URL, None, MODEL) is None  # others may write there
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(private)
    monkeypatch.setenv(ENV_PEER_DIR, str(link))
    assert open_board(URL, None, MODEL) is None  # a link: not ours to trust
    # A board file that is a link is not followed.
    monkeypatch.setenv(ENV_PEER_DIR, str(private))
    opened = open_board(URL, None, MODEL)
    assert opened is not None
    (path,) = private.iterdir()
    opened.close()
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    assert open_board(URL, None, MODEL) is None
    assert not (tmp_path / "elsewhere").exists()
    # Without a usable board, a client works as before (AIMD alone).
    monkeypatch.setenv(ENV_PEER_DIR, "off")
    with wi.Client(
        API_KEY,
        base_url=URL,
        http_client=httpx.Client(transport=httpx.MockTransport(lambda r: json_response(200, completion_body()))),
    ) as client:
        assert client.chat.create(model=MODEL, messages=MESSAGES).text


def test_a_directory_the_user_named_that_cannot_be_used_is_said_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Named in `WANDB_INFERENCE_PEER_DIR` but open to others: one log warning naming it
    (not one per model), and the client goes on without a board. The default directory
    failing is not the user's doing: nothing said."""
    monkeypatch.setattr(_board, "_warned", False)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    monkeypatch.setenv(ENV_PEER_DIR, str(shared))
    with caplog.at_level("WARNING", logger="wandb_inference"):
        assert open_board(URL, None, MODEL) is None
        assert open_board(URL, None, "another/model") is None
    (record,) = caplog.records
    assert ENV_PEER_DIR in record.getMessage() and str(shared) in record.getMessage()
    assert "not a directory of this user's alone" in record.getMessage()
    caplog.clear()
    monkeypatch.setattr(_board, "_warned", False)
    monkeypatch.delenv(ENV_PEER_DIR)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(shared))
    (shared / f"wandb-inference-{os.getuid()}").mkdir(mode=0o755)
    (shared / f"wandb-inference-{os.getuid()}").chmod(0o755)
    with caplog.at_level("WARNING", logger="wandb_inference"):
        assert open_board(URL, None, MODEL) is None
    assert not caplog.records


def test_a_board_locked_by_a_hung_process_is_not_waited_for() -> None:
    """Taking a slot holds the file's lock for microseconds; a process stopped while
    holding it must not stop this one: after `_LOCK_WAIT`, no board, and the call goes on."""
    import fcntl

    first = board()  # (creates the file)
    (path,) = Path(os.environ[ENV_PEER_DIR]).iterdir()
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # (another open file: excludes this process too)
        started = time.monotonic()
        opened: list[Board | None] = []
        waiter = threading.Thread(target=lambda: opened.append(open_board(URL, "team/project", MODEL)), daemon=True)
        waiter.start()
        waiter.join(5)  # (a wait on the lock for ever would hang here, not the suite)
        assert opened == [None]
        assert _board._LOCK_WAIT <= time.monotonic() - started < _board._LOCK_WAIT + 1.0
    finally:
        os.close(fd)
    assert open_board(URL, "team/project", MODEL) is not None  # free again
    first.close()


def test_a_full_board_is_not_used_and_stale_slots_are_taken() -> None:
    boards = [board() for _ in range(64)]
    assert open_board(URL, "team/project", MODEL) is None  # every slot taken
    boards.pop().close()
    late = board()  # a slot given back
    assert open_board(URL, "team/project", MODEL) is None
    # A slot whose owner wrote nothing for `_STALE` seconds (a process killed) is free.
    stale = boards[10]
    where = stale._where[0]
    token, _, full_at, level = _board._SLOT.unpack_from(stale._view, where)
    _board._SLOT.pack_into(stale._view, where, token, time.time() - _board._STALE - 1, full_at, level)
    taker = board()
    assert taker._where[0] == where
    # Its owner, alive after all, takes another slot at its next write (none free: the
    # board fails for it, and it carries on without one).
    lim = full(5, time.monotonic())
    stale.sync(lim, time.monotonic())
    assert lim.share == math.inf
    assert stale._view.closed
    for bd in [*boards, late, taker]:
        bd.close()


def test_a_slot_taken_over_is_claimed_again() -> None:
    a = board()
    first = a._where[0]
    _board._SLOT.pack_into(a._view, first, 12345, time.time(), 0.0, 3.0)  # another's now
    lim = full(7, time.monotonic())
    a.sync(lim, time.monotonic())
    assert a._where[0] != first
    token, _, _, level = _board._SLOT.unpack_from(a._view, a._where[0])
    assert (token, level) == (a._token, 7.0)
    assert _board._SLOT.unpack_from(a._view, first)[0] == 12345  # left to its new owner
    second = a._where[0]
    a.close()  # gives back its own slot only
    data = next(Path(os.environ[ENV_PEER_DIR]).iterdir()).read_bytes()
    assert _board._SLOT.unpack_from(data, first)[0] == 12345
    assert _board._SLOT.unpack_from(data, second)[0] == 0


def test_a_failing_board_is_dropped_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any error of the board (here: taking a slot again fails) turns it off for that
    client, which carries on as if alone on the machine; nothing reaches the call."""
    bd = board()
    lim = full(5, time.monotonic())
    lim.share = 3.0

    def broken(*args: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "open", broken)
    _board._SLOT.pack_into(bd._view, bd._where[0], 1, 0.0, 0.0, 0.0)  # taken: forces a claim
    bd.sync(lim, time.monotonic())
    assert lim.share == math.inf
    assert bd._view.closed
    bd.sync(lim, time.monotonic() + 1)  # closed: nothing more, no error


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_leaves_its_parents_slot_alone() -> None:
    """The child inherits the mapping and the board object; dropping it there (as the
    gates do after fork) must not give the parent's slot back."""
    bd = board()
    where, token = bd._where[0], bd._token
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            bd.close()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _board._SLOT.unpack_from(bd._view, where)[0] == token
    bd.close()
    with open(next(Path(os.environ[ENV_PEER_DIR]).iterdir()), "rb") as f:
        assert _board._SLOT.unpack_from(f.read(), where)[0] == 0  # given back by its owner


# ------------------------------------------------------------------ the local server


@pytest.mark.slow
async def test_clients_of_one_process_share_through_the_board_on_the_local_server() -> None:
    """Three clients (as three processes of one machine would), 16 workers each, against
    a limit of 12: each sees the others' levels (a share of about 4), every call
    succeeds, and they finish close together."""
    with LocalServer(concurrency_limits={MODEL: 12}, service_time=0.03) as server:
        shares: list[list[float]] = [[], [], []]
        ended = [0.0, 0.0, 0.0]

        async def run(index: int) -> None:
            async with wi.AsyncClient("k", base_url=server.base_url) as client:

                async def worker() -> None:
                    for _ in range(20):
                        await client.chat.create(model=MODEL, messages=MESSAGES, max_tokens=1)
                    limiter = client._limiter
                    assert limiter is not None
                    shares[index].append(limiter._models[MODEL].share)

                async with anyio.create_task_group() as tg:
                    for _ in range(16):
                        tg.start_soon(worker)
            ended[index] = time.monotonic()

        started = time.monotonic()
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                for index in range(3):
                    tg.start_soon(run, index)
        statuses = [r.status for r in server.requests if r.path.endswith("/chat/completions")]
    assert statuses.count(200) == 3 * 16 * 20
    for seen in shares:
        finite = [s for s in seen if math.isfinite(s)]
        assert finite, seen  # each saw the others full at some point
        assert 2 <= statistics.median(finite) <= 8, finite
    times = [end - started for end in ended]
    assert min(times) / max(times) >= 0.6, times
