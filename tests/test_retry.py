"""The retry policy: decisions, bounds and Retry-After parsing (property-tested)."""

from __future__ import annotations

import email.utils
import json

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import wandb_inference as wi
from wandb_inference._exceptions import parse_retry_after
from wandb_inference._policy._errors_map import make_status_error
from wandb_inference._policy._retry import RetryPolicy, RetryState, is_retryable_error, may_have_been_processed


def _error(status: int, message: str = "x", **headers: str) -> wi.APIStatusError:
    body = json.dumps({"error": {"message": message}}).encode()
    return make_status_error(httpx.Response(status, content=body, headers=headers))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_retryable_kinds() -> None:
    assert is_retryable_error(_error(429, "Concurrency limit reached"))
    assert is_retryable_error(_error(503))
    assert is_retryable_error(_error(500))
    assert is_retryable_error(_error(502))
    assert is_retryable_error(_error(504))
    assert not is_retryable_error(_error(429, "You exceeded your current quota"))
    assert not is_retryable_error(_error(429, "W&B Inference isn't available for personal accounts."))
    assert not is_retryable_error(_error(402))
    assert not is_retryable_error(_error(404))
    assert not is_retryable_error(_error(501))
    assert is_retryable_error(httpx.ConnectError("refused"))
    assert not is_retryable_error(httpx.ReadTimeout("slow"))
    assert not is_retryable_error(ValueError("x"))


# Failures that prove the request never fully left the client: re-sending cannot
# duplicate work, whatever the method.
NOT_SENT = [
    httpx.ConnectError("refused"),
    httpx.ConnectTimeout("slow"),
    httpx.PoolTimeout("busy"),
    httpx.WriteError("rst"),
]
# Failures after the request was sent: the server may have processed (and billed) it.
AFTER_SENDING = [httpx.ReadError("reset"), httpx.RemoteProtocolError("Server disconnected without sending a response.")]


@pytest.mark.parametrize("error", NOT_SENT)
def test_failures_before_sending_are_retried_for_every_method(error: Exception) -> None:
    assert is_retryable_error(error)
    assert is_retryable_error(error, idempotent=True)
    assert not may_have_been_processed(error)
    assert RetryState(RetryPolicy()).decide(error).retry


@pytest.mark.parametrize("error", AFTER_SENDING)
def test_failures_after_sending_are_retried_only_when_idempotent(error: Exception) -> None:
    assert not is_retryable_error(error)
    assert is_retryable_error(error, idempotent=True)
    assert may_have_been_processed(error)
    decision = RetryState(RetryPolicy()).decide(error)
    assert not decision.retry and "may have been processed" in decision.reason
    assert RetryState(RetryPolicy()).decide(error, idempotent=True).retry


def test_attempt_timeouts_are_cut_to_the_time_left() -> None:
    clock = FakeClock()
    state = RetryState(RetryPolicy(total_timeout=10), clock=clock)
    given = {"connect": 5.0, "read": 600.0, "write": None, "pool": 60.0}
    assert state.attempt_timeouts(given) == {"connect": 5.0, "read": 10.0, "write": 10.0, "pool": 10.0}
    clock.now = 8.5
    assert state.attempt_timeouts(given) == {"connect": 1.5, "read": 1.5, "write": 1.5, "pool": 1.5}
    clock.now = 10.0
    with pytest.raises(wi.APITimeoutError, match=r"total_timeout=10s passed"):
        state.attempt_timeouts(given)
    assert RetryState(RetryPolicy(total_timeout=None), clock=clock).attempt_timeouts(given) is None


def test_max_retries_bound() -> None:
    state = RetryState(RetryPolicy(max_retries=2), rng=lambda: 0.5)
    assert state.decide(_error(503)).retry
    assert state.decide(_error(503)).retry
    decision = state.decide(_error(503))
    assert not decision.retry and "max_retries" in decision.reason


def test_absorbed_concurrency_429s_are_free_for_the_window_then_counted() -> None:
    """The gate's absorbed 429s do not use `max_retries` for `free_window` seconds after
    the first one (a wait for capacity, as for a slot); then they count as any retry."""
    clock = FakeClock()
    state = RetryState(RetryPolicy(max_retries=1), clock=clock, rng=lambda: 0.5)
    refused = _error(429, "Concurrency limit reached for requests")
    for step in range(50):
        clock.now = step * 0.1
        decision = state.decide(refused, free=True, free_window=10.0)
        assert decision.retry and decision.reason == "absorbed by the concurrency gate"
    assert state.retries == 0 and state.free_retries == 50
    clock.now = 10.5  # the window has passed: counted now
    assert state.decide(refused, free=True, free_window=10.0).reason == "retryable"
    decision = state.decide(refused, free=True, free_window=10.0)
    assert not decision.retry and "max_retries=1" in decision.reason


def test_absorbed_429s_are_capped_per_call() -> None:
    from wandb_inference._policy._retry import MAX_FREE_RETRIES

    state = RetryState(RetryPolicy(max_retries=0), clock=FakeClock(), rng=lambda: 0.5)
    refused = _error(429, "Concurrency limit reached for requests")
    for _ in range(MAX_FREE_RETRIES):
        assert state.decide(refused, free=True).retry
    assert not state.decide(refused, free=True).retry
    # A status that is not retryable is never absorbed.
    fresh = RetryState(RetryPolicy(max_retries=3), clock=FakeClock())
    assert not fresh.decide(_error(400), free=True).retry


def test_total_timeout_bound() -> None:
    clock = FakeClock()
    state = RetryState(RetryPolicy(max_retries=50, total_timeout=10), clock=clock, rng=lambda: 1.0)
    assert state.decide(_error(429, "concurrency", **{"retry-after": "4"})).retry
    clock.now = 7.0
    decision = state.decide(_error(429, "concurrency", **{"retry-after": "4"}))
    assert not decision.retry and "total_timeout" in decision.reason


def test_backoff_grows_and_caps() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=4)
    assert [policy.backoff(n, lambda: 1.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert policy.backoff(3, lambda: 0.0) == 0.0


@given(
    retries=st.integers(0, 10),
    hints=st.lists(st.one_of(st.none(), st.floats(0, 200, allow_nan=False)), min_size=1, max_size=15),
    jitter=st.floats(0, 1),
    total=st.one_of(st.none(), st.floats(0.1, 500)),
    initial=st.floats(0, 5),
    max_delay=st.floats(0, 30),
    cap=st.floats(0, 120),
)
def test_delays_always_within_bounds(
    retries: int,
    hints: list[float | None],
    jitter: float,
    total: float | None,
    initial: float,
    max_delay: float,
    cap: float,
) -> None:
    policy = RetryPolicy(
        max_retries=retries, initial_delay=initial, max_delay=max_delay, max_retry_after=cap, total_timeout=total
    )
    clock = FakeClock()
    state = RetryState(policy, clock=clock, rng=lambda: jitter)
    taken = 0
    for hint in hints:
        headers = {} if hint is None else {"retry-after-ms": str(hint * 1000)}
        decision = state.decide(_error(503, **headers))
        if not decision.retry:
            continue
        taken += 1
        assert decision.delay >= 0
        if hint is not None:
            assert decision.delay == pytest.approx(hint)
            assert decision.delay <= cap
        else:
            assert decision.delay <= max_delay
        clock.now += decision.delay
        if total is not None:
            assert clock.now <= total + 1e-9
    assert taken <= retries


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "300"}, 0.3),
        ({"retry-after": "-1"}, None),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after-ms": "x", "retry-after": "3"}, 3.0),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(httpx.Headers(headers)) == expected


def test_parse_retry_after_http_date() -> None:
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(httpx.Headers({"retry-after": date}), now=1_000_000) == pytest.approx(30)
    past = email.utils.formatdate(999_000, usegmt=True)
    assert parse_retry_after(httpx.Headers({"retry-after": past}), now=1_000_000) == 0.0


@pytest.mark.parametrize(
    "kwargs", [{"max_retries": -1}, {"initial_delay": -1}, {"max_delay": float("nan")}, {"total_timeout": 0}]
)
def test_policy_validation(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"RetryPolicy|max_retries"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]
