"""`AIMDLimit`: the pure policy behind the concurrency gates (`_concurrency.py`).

W&B Inference refuses a request at once (a concurrency 429, no `Retry-After`) when the
project already has its limit L of requests in flight for that model; nothing is
queued. The policy keeps the number of requests in flight at L without knowing it. What
it learns from each answer, and what it does:

- **A refusal is a measurement, not only a signal.** When a request is refused, the
  others of ours still in flight were accepted: for a lone client that count *is* L.
  So the limit becomes that count, not half of it. A burst of refusals from one
  overload (the first rounds, a lowered limit) is one *episode*: refusals of requests
  sent before the cut, or within a round of it, only lower the limit to what is still
  in flight, never cut twice (halving on every 429 collapsed 64 workers to 1).
- **The start.** The first requests go out `_INITIAL` (8) at a time, 8x as many each
  round until the first refusal; the growth is paced (a request that ends is replaced
  at once, the room a success adds opens `_PACE`, a quarter round, later, a slot at a
  time over `_SPREAD`, half a round), so processes started together split the first
  episode evenly (unpaced, the first to see answers took the freed slots: 15/14/2/1 of
  32). **Alone** on this machine's board (`others`) `_LONE_WAIT` (20 ms) after its first
  request, with no refusal yet, a client opens `_LONE_START` (64) at once: otherwise a
  short run at a large limit spends its first round at 8 (L = 128: 0.85 of the oracle
  in a run of ten rounds, 0.92 with it). The price, once: at a limit under 64 that
  does not refuse the first 8 within 20 ms, a burst of refusals, answered at once and
  retried in line.
- **Contended from the start.** Nothing in the first episode tells a client whether the
  level it measured is the whole limit or its share. So it is contended for its first
  `_START_CONTENDED` rounds (probes every half round; its first `_GENTLE_CUTS` refused
  probes cut to `_START_YIELD`, 95%), and while the service shows others. **A lone
  client finds out in a few rounds:** `_ALONE_AFTER` (3) cuts in a row whose freed
  slots the next probe found free, each followed by a refusal at the level of the one
  before (within `_spread`): nobody else's share moved. (At one slot: refused there
  `_ALONE_AFTER` times in a row with no sign of others.)
- **Probing, rarely, alone.** After a hold of `_HOLD` rounds (a round: `limit`
  successes) the limit allows one more request. Taken, the limit keeps rising in
  doubling steps (one per answered probe): a raised limit is found in a few round
  trips; refused, the level is confirmed and the next hold is twice as long (up to
  `_HOLD * _HOLD_CAP` rounds, at most `_PROBE_EVERY` successes): about one 429 in 16
  calls at L = 1, one in 32 at L = 4 to 16, fewer above. A refused probe is the gate's
  doing: its retry goes first in line, free of `max_retries`. While requests take much
  longer than they used to (`_QUEUED`: a queue building up) the limit does not grow.
- **Sharing the limit.** A refusal while no more of ours were in flight than the level
  the last cut confirmed (less a margin for answers on their way) means someone else
  took that slot (another process, or a lowered limit): the client cuts to `_YIELD`
  (80%) of what is still in flight, holds `_VICTIM_HOLD` rounds, and is *contended*
  for `_CONTENDED_ROUNDS` rounds (so is a client shut out). Contended, it probes every
  half round and **every refused probe cuts** to `_PROBE_YIELD` (80%), rounded at
  random (a share of 2 is cut as often, on average, as 20% says); growth stays
  additive until `_ACCEL_AFTER` probes in a row went through. When the limit is full,
  every contended client's probes are refused about as often, so each cuts in
  proportion to its share while all grow by the same steps: AIMD, which moves shares
  toward equal (Chiu and Jain). A client alone never pays this sawtooth after its
  start. The price of sharing is refusals, each answered and retried at once.
- **Shut out.** Refused with nothing of ours in flight: others hold the whole limit.
  New requests wait about half a round (jittered; twice as long after each refusal in
  a row past `_SHUT_OUT_PATIENCE`, at most 8x), instead of a burst meeting the same
  full service. These retries are absorbed too (free of `max_retries`, `_retry.py`).
- **Clients on one machine tell each other their levels** (`_board.py`): `share` is the
  mean level of the `peers` clients of the project here that are full. While another
  is full, a client stays contended; its probes and raises stop at `share` (unless
  together they hold more than when the service last refused one of them: new room);
  above it by half a slot it gives one back where it would have probed; at it, it
  probes `peers` times less often; refused, it cuts gently (`_START_YIELD`).

What it cannot do: clients on different machines share by the statistics above, not by
agreement; a limit of a few slots shared by several clients is held by one at a time.
Designs left out (latency gradients as Netflix's Gradient2 and Envoy, the AWS SDKs'
CUBIC on a rate, plain AIMD), the values and what was tried:
`benchmarks/report/concurrency-design.md`.

Everything here is pure: time comes in as `now` (the gates pass `time.monotonic()`),
jitter from `rng`; no I/O, no locks (the gates serialise calls).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable

__all__ = ["AIMDLimit", "Ticket"]

# Rounds at a level before probing one request above it (doubled after each refused
# probe, up to `_HOLD * _HOLD_CAP` rounds), but at least one probe in `_PROBE_EVERY`
# successes: a lone client meets about one 429 in 16 to 32 calls at small limits and
# still finds room that others left within a few rounds at large ones.
_HOLD = 2
_HOLD_CAP = 8
_PROBE_EVERY = 32
# A refusal our own probing does not explain (someone took the slot): cut to this
# fraction of what is still in flight, and hold this many rounds.
_YIELD = 0.8
_VICTIM_HOLD = 2
# While contended (that many rounds after such a refusal, after being shut out, or after
# a probe went through above a level a refused probe had confirmed): probe every
# `_CONTENDED_PROBE` of a round (at least one success apart); a refused probe cuts to
# `_PROBE_YIELD` of the level; growth doubles only after `_ACCEL_AFTER` probes in a row
# went through.
_CONTENDED_ROUNDS = 32
_CONTENDED_PROBE = 0.5
_PROBE_YIELD = 0.8
_START_CONTENDED = 32  # rounds contended after the first episode
# Contended: this many cuts in a row after which the first probe went through (the slots
# given up were still free) and the next refusal came at the same level (nobody else's
# share moved) end contention (a lone client pays the contended start for a few rounds).
_ALONE_AFTER = 3
_ACCEL_AFTER = 4
# The first `_GENTLE_CUTS` cuts of a contention that began without a sign of others (the
# first rounds, or room that appeared) are gentler, with faster regrowth, so a lone
# client's contended start costs little; then every contended client cuts alike.
_START_YIELD = 0.95
_START_ACCEL_AFTER = 2
_GENTLE_CUTS = 3
# Shut out: pause about half a round, within these bounds (s), longer past
# `_SHUT_OUT_PATIENCE` refusals in a row; before any success a round is `_DEFAULT_ROUND`.
_PAUSE_MIN = 0.005
_PAUSE_MAX = 2.0
_DEFAULT_ROUND = 0.1
_SHUT_OUT_PATIENCE = 8
_SHUT_OUT_ROUND = 0.5
_SHUT_OUT_BACKOFF = 3
# Without `max_concurrency` (docstring, "The start"): `_INITIAL` at a time, `_GROWTH`
# more for each success until the first refusal, opening `_PACE` of a round later over
# `_SPREAD`; `_LONE_START` at `_LONE_WAIT` alone; past `_RECOVERED` unrefused: unlimited.
_INITIAL = 8
_GROWTH = 7
_LONE_START = 64
_LONE_WAIT = 0.02
_PACE = 0.25
_SPREAD = 0.5
_RECOVERED = 256
# Our count of requests in flight runs ahead of the service's by those whose answers
# are on their way: about `in flight * network round trip / service time` (the round
# trip measured by refusals, which the service answers at once). A refusal within this
# fraction of that of the confirmed level is taken as our own excess, not contention.
_NOISE = 0.5
# Requests lately (`round_time`) taking this many times as long as they used to: no growth.
_QUEUED = 1.5


def _cut(fraction: float, level: int, rng: Callable[[], float]) -> int:
    """`fraction` of `level`, rounded at random (up with the probability of the fraction
    left over): small levels are cut by as much as large ones on average."""
    return math.floor(fraction * level + rng())


class Ticket:
    """What a limit remembers about one request in flight (from `take` to `release`)."""

    __slots__ = ("epoch", "level", "probe", "started")

    def __init__(self, epoch: int, level: int, probe: bool, started: float) -> None:
        self.epoch = epoch  # the episode it was sent in
        self.level = level  # requests of ours already in flight when it was sent
        self.probe = probe  # sent above the level the service last accepted
        self.started = started


@dataclasses.dataclass(slots=True)
class AIMDLimit:
    """A limit on requests in flight, adapted to the service's concurrency 429s.

    Attributes:
        ceiling: never more in flight than this (`max_concurrency`; inf: none).
        adaptive: adapt to 429s; when false the limit stays at `ceiling`.
        rng: jitter source, in `[0, 1)`.
        limit: how many may be in flight now (inf: unlimited).
        in_flight: how many are (kept by the gate through `take` and `release`).
        known: the level the service last accepted (inf: not known yet); requests
            sent above it are probes.
        resume_at: no request starts before this time (after being shut out).
        round_time: the smoothed duration of successful requests (seconds).
        share, peers: the mean level of the clients on this machine that are full (this
            one too when it is), and how many (set by the gate, `_board.py`; inf, 1).
        others: how many other clients of the project the board shows (0: none).
        lone_at: when the lone start opens (0: not pending; the gate reads its board then).
        full_at: when this limit last had as many in flight as it allowed.
    """

    ceiling: float = math.inf
    adaptive: bool = True
    rng: Callable[[], float] = dataclasses.field(default=random.random, repr=False, compare=False)
    limit: float = dataclasses.field(init=False)
    in_flight: int = dataclasses.field(init=False, default=0)
    known: float = dataclasses.field(init=False, default=math.inf)
    resume_at: float = dataclasses.field(init=False, default=0.0)
    round_time: float = dataclasses.field(init=False, default=0.0)
    share: float = dataclasses.field(init=False, default=math.inf)
    full_at: float = dataclasses.field(init=False, default=-math.inf)
    peers: int = dataclasses.field(init=False, default=1)
    others: int = dataclasses.field(init=False, default=0)
    lone_at: float = dataclasses.field(init=False, default=-1.0)  # (-1: at the first take)
    _epoch: int = dataclasses.field(init=False, default=0, repr=False)
    _successes: int = dataclasses.field(init=False, default=0, repr=False)  # in this round
    _rounds: int = dataclasses.field(init=False, default=0, repr=False)  # held at this level
    _hold: int = dataclasses.field(init=False, default=1, repr=False)  # hold multiplier
    _step: int = dataclasses.field(init=False, default=1, repr=False)  # next raise
    _streak: int = dataclasses.field(init=False, default=0, repr=False)  # probes in a row taken
    _contended: int = dataclasses.field(init=False, default=0, repr=False)  # rounds left
    _confirmed: float = dataclasses.field(init=False, default=math.inf, repr=False)
    _top: float = dataclasses.field(init=False, default=math.inf, repr=False)  # last refused probe's level
    _freed: bool = dataclasses.field(init=False, default=False, repr=False)  # the last cut gave slots up
    _reclaimed: bool = dataclasses.field(init=False, default=False, repr=False)  # ... and got them back
    _unclaimed: int = dataclasses.field(init=False, default=0, repr=False)  # cycles alone-like, in a row
    _refused_at: int = dataclasses.field(init=False, default=-1, repr=False)  # last probe refused: its level
    _shared: bool = dataclasses.field(init=False, default=False, repr=False)  # others seen
    _gentle: int = dataclasses.field(init=False, default=0, repr=False)  # gentle cuts left
    _refusal_time: float = dataclasses.field(init=False, default=0.0, repr=False)
    _slow_time: float = dataclasses.field(init=False, default=0.0, repr=False)
    _cut_at: float = dataclasses.field(init=False, default=-math.inf, repr=False)
    _machine: float = dataclasses.field(init=False, default=math.inf, repr=False)
    _shut_out: int = dataclasses.field(init=False, default=0, repr=False)  # refusals in a row
    _since_probe: int = dataclasses.field(init=False, default=0, repr=False)
    _grow_to: float = dataclasses.field(init=False, default=0.0, repr=False)  # pending growth
    _grow_at: float = dataclasses.field(init=False, default=0.0, repr=False)  # ... opens from then
    _grow_from: float = dataclasses.field(init=False, default=0.0, repr=False)  # ... the limit before
    _grow_every: float = dataclasses.field(init=False, default=0.0, repr=False)  # ... a slot each

    def __post_init__(self) -> None:
        starts = self.adaptive and math.isinf(self.ceiling)  # (the start is for these only)
        self.limit = _INITIAL if starts else self.ceiling
        self.lone_at = -1.0 if starts else 0.0

    @property
    def contended(self) -> bool:
        """Whether the service recently showed others using the same limit."""
        return self._contended > 0

    @property
    def reach(self) -> float:
        """The limit, counting room that opens shortly (growth paced before the first
        refusal): how many a gate may wake to wait for it."""
        return max(self.limit, self._grow_to)

    def has_room(self, now: float) -> bool:
        """Whether one more request may start at `now`."""
        return self.wait_time(self.in_flight, now) <= 0

    def room(self, now: float) -> float:
        """How many more may start at `now` by this limit (the pause aside)."""
        self._open(now)
        return self.limit - self.in_flight

    def wait_time(self, in_flight: int, now: float) -> float:
        """0 when one more request may start at `now` with `in_flight` counted; else the
        seconds until one may (inf: not before a request ends)."""
        self._open(now)
        if in_flight >= self.limit:
            at = math.inf
            if in_flight < self._grow_to:
                at = self._grow_at + (in_flight - self._grow_from) * self._grow_every
            if self.lone_at > 0 and in_flight < _LONE_START:
                at = min(at, self.lone_at)
            return max(at, self.resume_at) - now
        return self.resume_at - now if self.resume_at > now else 0.0

    def _open(self, now: float) -> None:
        """Raise the limit by the paced growth opened by `now`: a slot each `_grow_every`
        seconds from `_grow_at`; and to `_LONE_START` when the lone start is due and no
        other client is on the board (`others`, read by the gate at `lone_at`)."""
        if 0 < self.lone_at <= now:
            self.lone_at = 0.0
            if not self.others and math.isinf(self.known) and self.limit < _LONE_START:
                self._raise(_LONE_START)
        if self._grow_to and now >= self._grow_at:
            opened = self._grow_to
            if self._grow_every > 0:
                opened = self._grow_from + 1 + math.floor((now - self._grow_at) / self._grow_every)
            if opened >= self._grow_to:
                opened, self._grow_to = self._grow_to, 0.0
            if opened > self.limit:
                self._raise(opened)

    def _alone_again(self) -> None:
        """One more sign of being alone (a cut's slots left free, or refused at one slot
        again); `_ALONE_AFTER` in a row end contention."""
        self._unclaimed += 1
        if self._unclaimed >= _ALONE_AFTER and math.isinf(self.share):
            self._contended = self._unclaimed = 0

    def take(self, now: float) -> Ticket | None:
        """Count one more request in flight; its ticket goes back to `release`."""
        level = self.in_flight
        self.in_flight = level + 1
        if self.lone_at < 0:
            self.lone_at = now + _LONE_WAIT
        if level + 1 >= self.limit < self.ceiling:  # (held back by a ceiling: not by others)
            self.full_at = now
        if not self.adaptive:
            return None
        return Ticket(self._epoch, level, level >= self.known, now)

    def release(self, ticket: Ticket | None, now: float, *, ok: bool, rate_limited: bool) -> bool:
        """A request ended (`ok`: it succeeded; `rate_limited`: a concurrency 429).

        Returns:
            True when it was refused because this limit was probing above the level the
            service accepted: the gate's doing, not the call's.
        """
        probing = False
        if ticket is not None:
            if rate_limited:
                probing = self._refused(ticket, now)
            elif ok:
                self._succeeded(ticket, now)
        self.in_flight -= 1
        return probing

    def _refused(self, ticket: Ticket, now: float) -> bool:
        # Our probing explains the refusal when more of ours were in flight than the
        # service last accepted (whichever of them it refused); otherwise someone else
        # took capacity we had, or the service lowered its limit.
        took = now - ticket.started
        self._refusal_time = took if not self._refusal_time else self._refusal_time + 0.1 * (took - self._refusal_time)
        probing = self.in_flight > self._confirmed - self._noise()
        level = self.in_flight - 1  # the others of ours, still in flight: accepted
        if level <= 0:
            # Shut out: wait about a round; after `_SHUT_OUT_PATIENCE` refusals in a row,
            # twice as long after each (up to `_PAUSE_MAX`).
            self._contended = _CONTENDED_ROUNDS
            self._shared = True
            backoff = 2.0 ** min(_SHUT_OUT_BACKOFF, max(0, self._shut_out - _SHUT_OUT_PATIENCE))
            pause = (0.5 + self.rng()) * _SHUT_OUT_ROUND * (self.round_time or _DEFAULT_ROUND) * backoff
            self._shut_out += 1
            self.resume_at = max(self.resume_at, now + min(_PAUSE_MAX, max(_PAUSE_MIN, pause)))
        if ticket.epoch != self._epoch or (
            not ticket.probe and now - self._cut_at < (self.round_time or _DEFAULT_ROUND)
        ):
            # Sent before the last cut, or refused within a round of it: the same
            # episode (answers of the old level were still coming in); what is left in
            # flight is the level.
            self._set(min(self.limit, level))
        elif math.isinf(self.known):
            self._set(min(self.limit, level))  # the first episode measures the level
            self._refused_at = -1  # (the level it ends at)
            self._contended = _START_CONTENDED
            self._shared = False
            self._gentle = _GENTLE_CUTS
        elif probing:
            if (
                self._contended
                and not self._shared
                and (self._reclaimed or level <= 1)
                and abs(ticket.level - (self._refused_at if self._refused_at >= 0 else self._confirmed))
                <= self._spread()
            ):
                # The slots the last cut gave up were free when asked for again, and the
                # service refused one more at the level it did before: nobody else's
                # share moved. (At one slot nothing can be given up.)
                self._alone_again()
            else:
                self._unclaimed = 0  # someone took the slots, or shares moved
            self._refused_at, self._reclaimed = ticket.level, False
            self._top = level  # what the service held when it refused one more
            if self.share < math.inf:  # (and of this machine's clients, when others are full)
                self._machine = self.share * self.peers
            new = level
            if self._contended:
                gentle = self._gentle or not math.isinf(self.share)
                new = _cut(_START_YIELD if gentle else _PROBE_YIELD, level, self.rng)
                self._gentle = max(0, self._gentle - 1)
            self._set(min(self.limit, new))
            self._freed = new < level
            if not self._contended:
                self._hold = min(self._hold * 2, _HOLD_CAP)
        else:
            self._unclaimed = 0
            self._set(_cut(_YIELD, level, self.rng))
            self._contended = _CONTENDED_ROUNDS
            self._shared = True
            self._gentle = 0
            self._hold = 1
            self._rounds = -_VICTIM_HOLD
        if ticket.epoch == self._epoch:
            self._epoch += 1
        self._cut_at = now
        return probing

    def _noise(self, trips: float = _NOISE) -> float:
        """How many more of ours the count may show than the service holds: those whose
        answers are on their way (`trips` network round trips' worth of requests)."""
        if not self.round_time or math.isinf(self._confirmed):
            return 0.0
        return float(math.floor(trips * self._confirmed * min(1.0, self._refusal_time / self.round_time)))

    def _spread(self) -> float:
        """How far apart the levels of two refusals may be for one service holding the
        same number of ours: requests sent together arrive in any order, and answers on
        their way (both ways: about two round trips' worth) blur the count."""
        return 1 + self._noise(2.0)

    def _set(self, limit: float) -> None:
        """Cut to `limit` (at least 1): the new level the service is taken to accept."""
        self.limit = self.known = self._confirmed = max(1.0, float(limit))
        self._grow_to = self.lone_at = 0.0
        # (`_successes` runs on: frequent cuts must not stall the rounds ending contention.)
        self._streak = self._since_probe = 0
        self._rounds = min(self._rounds, 0)
        self._step = 1

    def _succeeded(self, ticket: Ticket, now: float) -> None:
        took = now - ticket.started
        self.round_time = took if not self.round_time else self.round_time + 0.1 * (took - self.round_time)
        slow = self._slow_time
        self._slow_time = took if not slow else slow + 0.01 * (took - slow)
        self.resume_at = 0.0
        self._shut_out = 0
        limit = self.limit
        if limit >= self.ceiling or math.isinf(limit):
            return
        # Requests lately taking much longer than they used to: a queue is building up
        # (a loaded server admits late), and more in flight would only lengthen it.
        queueing = self.round_time > _QUEUED * self._slow_time
        if math.isinf(self.known):
            if queueing:
                self._set(min(limit, float(self.in_flight)))  # stop here: the level
            else:
                # No refusal yet: 8x each round, the growth paced (`_PACE`, `_SPREAD`).
                if not self._grow_to:
                    self._grow_at = now + _PACE * self.round_time
                    self._grow_from = limit
                    self._grow_every = _SPREAD * self.round_time / (_GROWTH * limit)
                self._grow_to = min(self.ceiling, max(self._grow_to, limit) + _GROWTH)
            return
        if ticket.probe and ticket.epoch == self._epoch:
            if queueing:
                # Taken, but while a queue builds up: not room. The level stands; probe
                # less often.
                self._hold = min(self._hold * 2, _HOLD_CAP)
                self._streak = self._rounds = self._successes = 0
                self._step = 1
                self.limit = self.known
                return
            # The service took one more than it had: raise again, faster while it holds.
            if self._hold > 1 and not self._contended and ticket.level >= self._top + self._noise():
                # Room appeared above a level a refused probe had confirmed: the limit
                # rose, or another client yielded or left. Grow as a sharer does.
                self._contended = _CONTENDED_ROUNDS
                self._shared = False
                self._gentle = _GENTLE_CUTS
            if self._freed:
                # The first probe after a cut went through: the slots it gave up were
                # still free (alone, or others cut too: the next refusal's level tells).
                self._freed = False
                self._reclaimed = True
            self.known = max(self.known, float(ticket.level + 1))
            if self.known >= limit:
                self._streak += 1
                if not self._contended or self._streak >= (_START_ACCEL_AFTER if self._gentle else _ACCEL_AFTER):
                    self._step *= 2
                # The machine's clients hold no more than when the service last refused
                # one of them: the room one of them left, so stop at the share.
                room = self.share * self.peers > self._machine
                if not room and self.known + self._step > self.share:
                    self._streak, self._step = 0, 1
                    self._raise(max(self.known, math.floor(self.share)))
                else:
                    self._raise(self.known + self._step)
            return
        self._successes += 1
        if self._successes >= limit:
            self._successes = 0  # a round at this level
            self._rounds += 1
            if not math.isinf(self.share):  # others on this machine are full: contended
                self._contended, self._shared = _CONTENDED_ROUNDS, True
            if self._contended:
                self._contended -= 1
        elif not self._contended:
            return
        if limit > self.known:
            return  # probing: wait for the probes' answers
        if self._contended:
            # Probing often: whoever the service refuses cuts (AIMD), and a probe that
            # lands in a slot another client is about to reuse moves that slot to us.
            # (Others full on this machine: `share`, `peers`, the docstring's last point.)
            if self._rounds >= 0:
                self._since_probe += 1
                half = max(1, math.ceil(_CONTENDED_PROBE * limit))  # successes in half a round
                slow = self.peers if self.share < limit + 0.5 else 1  # at the share: less often
                if self._since_probe >= half and limit > self.share + 0.5:
                    self._since_probe = 0
                    self._set(limit - 1)
                elif limit <= self.share and self._since_probe >= half * slow:
                    self._since_probe = 0
                    self._raise(limit + 1)
            return
        if self._rounds >= self._hold_rounds(limit):
            self._rounds = 0
            self._raise(limit + 1)

    def _hold_rounds(self, limit: float) -> int:
        """Rounds at a confirmed level before the next probe."""
        return min(_HOLD * self._hold, max(_HOLD, math.ceil(_PROBE_EVERY / limit)))

    def _raise(self, limit: float) -> None:
        self.limit = min(self.ceiling, limit)
        if self.limit >= _RECOVERED and math.isinf(self.ceiling) and math.isinf(self.known):
            # Grown past any plausible limit before any refusal: unlimited. (After one,
            # the limit stays a number: going unlimited again sent every worker at once.)
            self.limit = math.inf
