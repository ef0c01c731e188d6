"""Batch jobs, the pure parts: input lines, output lines, error treatment, the dispatcher,
latency quantiles and the status line."""

from __future__ import annotations

import json
import math
from typing import Any

import httpx
import pytest
from _helpers import API_KEY, BASE_URL, MODEL, completion_body, error_body, json_response

import wandb_inference as wi
from wandb_inference._batch._dispatch import Dispatcher
from wandb_inference._batch._progress import PlainProgress, format_status, format_summary
from wandb_inference._batch._request import call_arguments
from wandb_inference._batch._result import classify, error_code, output_line
from wandb_inference._batch._summary import BatchStats, LatencyHistogram

CHAT = "/v1/chat/completions"


def line(custom_id: str = "a", **body: Any) -> dict[str, Any]:
    body.setdefault("model", MODEL)
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return {"custom_id": custom_id, "method": "POST", "url": CHAT, "body": body}


# --------------------------------------------------------------------------- input lines


@pytest.mark.parametrize("url", ["/v1/chat/completions", "/chat/completions"])
def test_a_chat_line_with_or_without_v1(url: str) -> None:
    request = wi.BatchRequest.from_line(json.dumps({**line(), "url": url}), line_number=7)
    assert (request.url, request.endpoint, request.model, request.line) == (CHAT, "chat", MODEL, 7)


def test_an_embeddings_line_and_the_named_constructors() -> None:
    raw = {"custom_id": "e", "url": "/embeddings", "body": {"model": "BAAI/bge-m3", "input": ["a", "b"]}}
    request = wi.BatchRequest.from_line(raw)  # `method` may be left out: POST is the only one
    assert request.endpoint == "embeddings" and request.url == "/v1/embeddings"
    assert wi.BatchRequest.embeddings("e", model="BAAI/bge-m3", input=["a", "b"]).to_line() == {
        "custom_id": "e",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "BAAI/bge-m3", "input": ["a", "b"]},
    }
    chat = wi.BatchRequest.chat("c", model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=3)
    assert chat.body["max_tokens"] == 3 and chat.endpoint == "chat"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("{not json", "not a JSON object"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({**line(), "custom_id": ""}), "custom_id must be a non-empty string"),
        (json.dumps({**line(), "custom_id": 12}), "custom_id must be a non-empty string, got 12"),
        (json.dumps({**line(), "method": "GET"}), "method must be POST"),
        (json.dumps({**line(), "url": "/v1/completions"}), "url must be /v1/chat/completions or /v1/embeddings"),
        (json.dumps({**line(), "body": "text"}), "body must be a JSON object"),
        (json.dumps({"custom_id": "a", "url": CHAT, "body": {"messages": []}}), "body.model is missing"),
        (json.dumps({"custom_id": "a", "url": CHAT, "body": {"model": MODEL}}), "body.messages is missing"),
        (json.dumps(line(temperature=5)), "temperature must be at most 2 (got 5)"),
        (json.dumps(line(messages=[{"role": "robot", "content": "x"}])), "messages[0].role"),
        (json.dumps(line(stream=True)), "batch lines are not streamed"),
        (json.dumps({"custom_id": "e", "url": "/v1/embeddings", "body": {"model": "m", "input": []}}), "input"),
    ],
)
def test_invalid_lines_say_what_is_wrong(raw: str, needle: str) -> None:
    with pytest.raises(wi.InvalidRequestError) as info:
        wi.BatchRequest.from_line(raw)
    assert needle in str(info.value)


def test_the_model_override_fills_in_or_replaces_the_model() -> None:
    raw = {"custom_id": "a", "url": CHAT, "body": {"messages": [{"role": "user", "content": "x"}]}}
    assert wi.BatchRequest.from_line(raw, model="m/x").model == "m/x"
    assert wi.BatchRequest.from_line(line(), model="m/y").body["model"] == "m/y"


def test_known_body_keys_become_parameters_and_the_rest_goes_in_extra_body() -> None:
    request = wi.BatchRequest.from_line(line(max_tokens=4, logprobs=True, timeout=3, extra_headers={"x": "1"}))
    kwargs = call_arguments(request)
    assert kwargs["max_tokens"] == 4
    # `timeout` and `extra_headers` are body fields here, not per-call options: sent as they are.
    assert kwargs["extra_body"] == {"logprobs": True, "timeout": 3, "extra_headers": {"x": "1"}}
    assert "timeout" not in kwargs and "extra_headers" not in kwargs


def test_a_request_built_by_hand_with_a_bad_url_is_refused() -> None:
    with pytest.raises(wi.InvalidRequestError):
        wi.BatchRequest(custom_id="a", url="/v1/images", body={})


# --------------------------------------------------------------------------- output lines


def _client(handler: Any) -> wi.Client:
    return wi.Client(
        api_key=API_KEY, base_url=BASE_URL, http_client=httpx.Client(transport=httpx.MockTransport(handler))
    )


def test_a_success_line_has_openai_s_shape() -> None:
    client = _client(lambda request: json_response(200, completion_body("hey"), **{"x-request-id": "req-1"}))
    reply = client.chat.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    out = output_line("a", reply, None)
    assert set(out) == {"id", "custom_id", "response", "error"}
    assert out["id"].startswith("batch_req_") and out["custom_id"] == "a" and out["error"] is None
    assert out["response"] == {"status_code": 200, "request_id": "req-1", "body": reply.to_dict()}
    assert out["response"]["body"]["choices"][0]["message"]["content"] == "hey"
    assert json.dumps(out)  # JSON-able as it is


def test_a_failure_line_keeps_the_error_response_and_a_code() -> None:
    body = error_body("bad temperature", code="invalid_parameter")
    client = _client(lambda request: json_response(400, body, **{"x-request-id": "req-2"}))
    with pytest.raises(wi.BadRequestError) as info:
        client.chat.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    out = output_line("a", None, info.value)
    assert out["response"] == {"status_code": 400, "request_id": "req-2", "body": body}
    assert out["error"]["code"] == "invalid_parameter"
    assert "bad temperature" in out["error"]["message"] and "\n" not in out["error"]["message"]
    assert API_KEY not in json.dumps(out)


def _status(cls: type[wi.APIStatusError], status: int, **headers: str) -> wi.APIStatusError:
    response = httpx.Response(status, headers=headers, request=httpx.Request("POST", BASE_URL + "/chat/completions"))
    return cls("failed", response=response, body=None)


def _connection(processed: bool) -> wi.APIConnectionError:
    error = wi.APIConnectionError("refused")
    error.may_have_been_processed = processed
    return error


@pytest.mark.parametrize(
    ("error", "treatment", "code"),
    [
        (_status(wi.BadRequestError, 400), "line", "bad_request"),
        (_status(wi.NotFoundError, 404), "line", "not_found"),
        (_status(wi.InternalServerError, 500), "line", "server_error"),
        (_status(wi.RateLimitError, 429), "requeue", "rate_limit_exceeded"),
        (_status(wi.ServiceUnavailableError, 503), "requeue", "service_unavailable"),
        (_connection(processed=False), "requeue", "connection_error"),
        (_connection(processed=True), "line", "connection_error"),
        (wi.APITimeoutError("read timeout"), "requeue", "timeout"),
        (_status(wi.QuotaExceededError, 402), "job", "quota_exceeded"),
        (_status(wi.AuthenticationError, 401), "job", "authentication_error"),
        (_status(wi.PermissionDeniedError, 403), "job", "permission_denied"),
        (_status(wi.PersonalAccountError, 429), "job", "personal_account"),
        (wi.CapabilityError("no images"), "line", "capability_error"),
        (_status(wi.APIStatusError, 418), "line", "http_418"),
    ],
)
def test_each_error_is_treated_and_coded(error: wi.WandbInferenceError, treatment: str, code: str) -> None:
    assert classify(error) == treatment
    assert error_code(error) == code
    out = output_line("x", None, error)
    assert out["error"]["code"] == code
    assert (out["response"] is None) == (not isinstance(error, wi.APIStatusError))


# --------------------------------------------------------------------------- dispatcher


def req(custom_id: str, model: str = "m") -> wi.BatchRequest:
    return wi.BatchRequest.from_line(line(custom_id, model=model))


class Gate:
    """A stand-in for the client's gate: a fixed limit per model, counting what started."""

    def __init__(self, limits: dict[str, float]) -> None:
        self.limits = limits
        self.in_flight: dict[str | None, int] = {}

    def room(self, model: str | None) -> float:
        return self.limits.get(model or "", math.inf) - self.in_flight.get(model, 0)


def take_all(d: Dispatcher, gate: Gate, now: float = 0.0) -> list[wi.BatchRequest]:
    started = []
    while (item := d.take(now)) is not None:
        assert isinstance(item, wi.BatchRequest)
        gate.in_flight[item.model] = gate.in_flight.get(item.model, 0) + 1
        started.append(item)
    return started


def finish(d: Dispatcher, gate: Gate, request: wi.BatchRequest, error: Any = None, now: float = 0.0) -> str:
    gate.in_flight[request.model] -= 1
    outcome = d.finished(request, error, now)
    d.release(request)
    return outcome


def test_the_dispatcher_keeps_to_its_limit_and_to_the_gate_s_room_per_model() -> None:
    gate = Gate({"a": 2})
    d = Dispatcher(max_in_flight=5, room=gate.room, stats=BatchStats(), lookahead=10)
    for i in range(4):
        d.add(req(f"a{i}", "a"))
    d.add(req("b0", "b"))
    d.add(req("b1", "b"))
    started = take_all(d, gate)
    # Two for "a" (its gate's room), then it looks past the waiting "a"s to the "b"s.
    assert [r.custom_id for r in started] == ["a0", "a1", "b0", "b1"]
    assert finish(d, gate, started[0]) == "write"
    assert [r.custom_id for r in take_all(d, gate)] == ["a2"]
    assert d.in_flight == 4 and not d.done()


def test_one_request_per_model_always_goes_even_when_the_gate_is_full() -> None:
    """Slots held by someone else must not stall the job: the gate bounds that wait."""
    gate = Gate({"a": 0})
    d = Dispatcher(max_in_flight=4, room=gate.room, stats=BatchStats())
    d.add(req("a0", "a"))
    d.add(req("a1", "a"))
    assert [r.custom_id for r in take_all(d, gate)] == ["a0"]


def test_a_request_refused_for_concurrency_is_requeued_after_a_wait_then_written() -> None:
    stats = BatchStats()
    gate = Gate({})
    d = Dispatcher(max_in_flight=2, room=gate.room, stats=stats, max_requeues=2, rng=lambda: 1.0)
    d.add(req("a"))
    d.source_done()
    (first,) = take_all(d, gate)
    refused = _status(wi.RateLimitError, 429, **{"retry-after": "3"})
    assert finish(d, gate, first, refused, now=10.0) == "requeue"
    assert d.next_wakeup(10.0) == 3.0  # the server's Retry-After
    assert take_all(d, gate, now=12.9) == [] and not d.done()
    (again,) = take_all(d, gate, now=13.0)
    assert finish(d, gate, again, _status(wi.RateLimitError, 429), now=13.0) == "requeue"
    (third,) = take_all(d, gate, now=100.0)
    # Out of requeues: the line fails (written to the errors file).
    assert finish(d, gate, third, _status(wi.RateLimitError, 429), now=100.0) == "write"
    assert stats.requeued == 2 and d.done()


def test_a_job_error_stops_the_job_and_its_line_is_not_written() -> None:
    gate = Gate({})
    d = Dispatcher(max_in_flight=2, room=gate.room, stats=BatchStats())
    for i in range(5):
        d.add(req(f"r{i}"))
    a, b = take_all(d, gate)
    quota = _status(wi.QuotaExceededError, 402)
    assert finish(d, gate, a, quota) == "drop"
    assert d.stopped == "error" and d.error is quota
    assert take_all(d, gate) == []  # nothing more starts
    assert not d.done()  # b is still in flight
    assert finish(d, gate, b) == "write"
    assert d.done() and d.unsent() == 3


def test_the_service_unreachable_many_times_in_a_row_stops_the_job() -> None:
    gate = Gate({})
    d = Dispatcher(max_in_flight=1, room=gate.room, stats=BatchStats(), unreachable_limit=3, rng=lambda: 0.0)
    for i in range(10):
        d.add(req(f"r{i}"))
    outcomes = []
    for _ in range(3):
        (request,) = take_all(d, gate, now=1000.0 * (_ + 1))
        outcomes.append(finish(d, gate, request, _connection(processed=False), now=1000.0 * (_ + 1)))
    assert outcomes == ["requeue", "requeue", "drop"]
    assert d.stopped == "error" and isinstance(d.error, wi.APIConnectionError)


def test_invalid_items_pass_through_as_results_even_after_a_stop() -> None:
    gate = Gate({})
    d = Dispatcher(max_in_flight=1, room=gate.room, stats=BatchStats())
    bad = wi.BatchResult(custom_id="x", error=wi.InvalidRequestError("bad"))
    d.add(req("a"))
    d.add(bad)
    d.stop("interrupted")
    assert d.take(0.0) is bad
    assert d.take(0.0) is None and d.done() and d.unsent() == 1


def test_max_concurrency_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_concurrency"):
        Dispatcher(max_in_flight=0, room=lambda m: 1.0, stats=BatchStats())


# --------------------------------------------------------------------------- counts


def test_latency_quantiles_are_within_two_percent() -> None:
    histogram = LatencyHistogram()
    assert histogram.quantile(0.5) is None
    values = [0.001 * i for i in range(1, 1001)]  # 1 ms .. 1 s
    for value in values:
        histogram.add(value)
    for q in (0.5, 0.95):
        exact = values[math.ceil(q * len(values)) - 1]
        got = histogram.quantile(q)
        assert got is not None and abs(got - exact) / exact < 0.02, (q, got, exact)


def test_the_status_line_and_the_summary_carry_the_numbers() -> None:
    stats = BatchStats(total=200)
    stats.succeeded, stats.failed, stats.rate_limited = 90, 10, 7
    stats.prompt_tokens, stats.completion_tokens = 12_345, 678
    stats.started -= 10.0
    status = format_status(stats)
    assert "100/200 (50%)" in status and "10.0/s" in status and "ETA 10.0s" in status
    assert "12k in / 678 out" in status and "10 errors" in status and "7 429s absorbed" in status
    stats.latency.add(0.5)
    text = format_summary(stats.summary(not_sent=100, stopped="interrupted"), output="o.jsonl", errors="e.jsonl")
    assert "90 succeeded, 10 failed (in e.jsonl)" in text and "not sent: 100" in text and "p50 0.50s" in text


def test_plain_progress_prints_every_interval() -> None:
    import io

    stream = io.StringIO()
    progress = PlainProgress(stream, interval=0.0)
    progress.tick(BatchStats(total=3))
    progress.tick(BatchStats(total=3))
    assert stream.getvalue().count("batch: 0/3") == 2
