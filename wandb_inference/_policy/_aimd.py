"""`AIMDLimit`: the pure policy behind the concurrency gates (`_concurrency.py`).

Additive increase, multiplicative decrease: a concurrency 429 halves the limit on
requests in flight, successes raise it back one at a time (slowly near the level that
was refused). Loaded with the first request that takes a slot.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["AIMDLimit"]


# Without a ceiling, a limit grown back to this many in flight is dropped altogether.
_RECOVERED = 256
_PROBE_SLOWDOWN = 8


@dataclasses.dataclass(slots=True)
class AIMDLimit:
    """Additive-increase / multiplicative-decrease limit on requests in flight."""

    ceiling: float = math.inf
    adaptive: bool = True
    limit: float = dataclasses.field(init=False)
    successes: int = dataclasses.field(init=False, default=0)
    in_flight: int = dataclasses.field(init=False, default=0)
    last_bad: float = dataclasses.field(init=False, default=math.inf)

    def __post_init__(self) -> None:
        self.limit = self.ceiling

    def has_room(self) -> bool:
        """Whether one more request may start now."""
        return self.in_flight < self.limit

    def on_rate_limited(self) -> None:
        """A concurrency 429: halve the limit (from what was in flight if unlimited)."""
        if not self.adaptive:
            return
        current = min(self.limit, float(self.in_flight))
        self.last_bad = max(1.0, current)
        self.limit = max(1.0, float(int(current) // 2))
        self.successes = 0

    def on_success(self) -> None:
        """A success: after `limit` successes in a row, allow one more in flight."""
        if not self.adaptive or self.limit >= self.ceiling:
            return
        self.successes += 1
        # Probe slowly where the service refused before: 8x the successes per step.
        needed = self.limit * (_PROBE_SLOWDOWN if self.limit + 1 >= self.last_bad else 1)
        if self.successes >= needed:
            self.successes = 0
            self.limit += 1
            if self.limit > self.last_bad:
                self.last_bad = math.inf  # grew past the refused level: probe at full speed
            if self.limit >= _RECOVERED and math.isinf(self.ceiling):
                self.limit = math.inf  # recovered: back to unlimited
