"""The adaptive concurrency policy in the simulator: fairness and throughput of clients
sharing a limit, over many seeds, in seconds of CPU (no sockets, simulated time).

    python benchmarks/concurrency_sim.py                      # the cases, 32 seeds each
    python benchmarks/concurrency_sim.py --set _PROBE_YIELD=0.9 --set _ACCEL_AFTER=3
    python benchmarks/concurrency_sim.py --drift               # pull back toward even
    python benchmarks/concurrency_sim.py --apart               # on different machines

Runs `tests/_simservice.py` (the SDK's own `AIMDLimit` and retry decisions against a
service that refuses above L) with the settings `benchmarks/report/concurrency-design.md`
calls realistic: 1.5 ms of network each way, 0.3 ms of client CPU per request sent, up
to 10 ms of start skew, service times jittered 20%, `max(50 ms, L / 150 s)` each (as
`benchmarks/concurrency.py`). Prints, per case, the median ratio to the oracle (the
same clients each told its share) and the median and 10th-percentile fairness (slowest
client's throughput over the fastest's), then the mean fairness of all runs of those cases, and one
lone client's ratio at L = 1, 8, 32 and 128. `--set` overrides a module constant of
`wandb_inference._policy._aimd` for the run (what the design notes' comparisons did).
`--drift` prints how a client's level moves in half a second against its level
(4 clients sharing 32): the pull back toward the even share. The clients share a
machine, so they see each other's levels on its board (`_board.py`; read at once here);
`--apart` puts them on different machines: AIMD alone.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import _simservice as sim  # (the simulator lives with the tests)

from wandb_inference._policy import _aimd

REALISTIC: dict[str, Any] = {"delay": 0.0015, "send_cost": 0.0003, "start_jitter": 0.01, "board": True}
# (clients, L, workers each)
CASES = [(4, 32, 32), (4, 8, 32), (2, 32, 32), (4, 16, 64)]
EXTRA = [(3, 48, 48)]


def service(limit: int) -> float:
    return max(0.05, limit / 150)


def shared(clients: int, limit: int, workers: int, seeds: int) -> tuple[float, list[float]]:
    """(median ratio to the oracle, each run's fairness)."""
    ratios, fairness = [], []
    for seed in range(1, seeds + 1):
        common = {"clients": clients, "seed": seed, "service": service(limit), **REALISTIC}
        oracle = sim.simulate(limit, workers, 1200, oracle=True, **common)
        ours = sim.simulate(limit, workers, 1200, **common)
        if ours.failed:
            raise SystemExit(f"{clients} x L = {limit}: {ours.failed} calls failed (seed {seed})")
        ratios.append(oracle.elapsed / ours.elapsed)
        fairness.append(ours.fairness)
    return statistics.median(ratios), fairness


def lone(limit: int, workers: int) -> float:
    calls = min(1200, max(200, 40 * limit))
    oracle = sim.simulate(limit, workers, calls, oracle=True, seed=1, service=service(limit), **REALISTIC)
    ours = sim.simulate(limit, workers, calls, seed=1, service=service(limit), **REALISTIC)
    return oracle.elapsed / ours.elapsed


def drift(seeds: int, horizon: float = 0.5) -> None:
    """Mean change of a client's limit over `horizon` seconds, by its limit (4 x 32)."""
    step = 0.05
    moves: dict[int, list[float]] = collections.defaultdict(list)
    ahead = round(horizon / step)
    for seed in range(1, seeds + 1):
        run = sim.simulate(32, 32, 1200, clients=4, seed=seed, service=service(32), sample_every=step, **REALISTIC)
        end = min(c.finished_at or 0.0 for c in run.clients)
        samples = run.samples
        for i in range(len(samples) - ahead):
            when, _, limits = samples[i]
            if when < 1.0 or samples[i + ahead][0] > end:
                continue
            for j, level in enumerate(limits):
                moves[min(20, int(level))].append(samples[i + ahead][2][j] - level)
    print(f"4 clients x L = 32, {seeds} seeds: a client's limit, and its mean change {horizon} s later")
    for level in sorted(moves):
        if len(moves[level]) >= 50:
            print(f"  {level:3d}: {statistics.mean(moves[level]):+.2f}  ({len(moves[level])} samples)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override an _aimd constant")
    parser.add_argument("--extra", action="store_true", help="also 3 clients x L = 48 (not in the mean)")
    parser.add_argument("--drift", action="store_true")
    parser.add_argument(
        "--apart", action="store_true", help="clients on different machines: no board (`_board.py`), AIMD alone"
    )
    args = parser.parse_args()
    REALISTIC["board"] = not args.apart
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.startswith("_") or not hasattr(_aimd, name):
            parser.error(f"--set {item!r}: expected NAME=VALUE with NAME a constant of _aimd")
        current = getattr(_aimd, name)
        try:
            setattr(_aimd, name, type(current)(value))
        except ValueError:
            parser.error(f"--set {item!r}: {value!r} is not a {type(current).__name__}")
    if args.drift:
        drift(args.seeds)
        return
    runs: list[float] = []
    for clients, limit, workers in CASES + (EXTRA if args.extra else []):
        ratio, fairness = shared(clients, limit, workers, args.seeds)
        if (clients, limit, workers) in CASES:
            runs += fairness
        p10 = sorted(fairness)[len(fairness) // 10]
        print(
            f"{clients} x L = {limit:3d}, {workers} workers each: {ratio:.2f} of the oracle, "
            f"fairness {statistics.median(fairness):.2f} (p10 {p10:.2f})"
        )
    print(f"mean fairness, all runs of the {len(CASES)} cases: {statistics.mean(runs):.3f}")
    print(
        "one client, 256 workers (16 at L = 1):",
        "  ".join(f"L = {L}: {lone(L, 16 if L == 1 else 256):.2f}" for L in (1, 8, 32, 128)),
    )


if __name__ == "__main__":
    main()
