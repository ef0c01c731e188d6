"""Each fault does what it says, over real sockets on 127.0.0.1: statuses and bodies,
dropped connections (no HTTP response at all), stalls, spoiled streams, the queue's
matching rules and the `X-Wandb-Fault` header language."""

from __future__ import annotations

import datetime as dt
import email.utils
import itertools
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from _helpers import load_spec, sse_events

from wandb_inference.server import FAULT_HEADER, Fault, LocalServer, StreamFault

MODEL = "meta-llama/Llama-3.3-70B-Instruct"
ASK = [{"role": "user", "content": "Say something"}]
BODY = {"model": MODEL, "messages": ASK, "max_tokens": 12, "seed": 1}
STREAM = {**BODY, "stream": True}
# A connection dropped before or during a response surfaces as one of these, never a status.
DROPPED = (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError, httpx.WriteError)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    with LocalServer() as srv:
        yield srv


@pytest.fixture
def http(server: LocalServer) -> Iterator[httpx.Client]:
    server.faults.clear()
    server.requests.clear()
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def error_schema() -> dict[str, Any]:
    doc = load_spec()
    return {"$ref": "#/components/schemas/ErrorResponse", "components": doc["components"]}


def read_until_dropped(http: httpx.Client, body: dict[str, Any], **kwargs: Any) -> tuple[bytes, Exception]:
    """Stream raw bytes until the connection breaks; return what arrived and the error."""
    received = bytearray()

    def consume() -> None:
        with http.stream("POST", "/chat/completions", json=body, **kwargs) as response:
            assert response.status_code == 200
            for piece in response.iter_raw():
                received.extend(piece)

    with pytest.raises(DROPPED) as caught:
        consume()
    return bytes(received), caught.value


def _read_all(sock: socket.socket) -> bytes:
    received = b""
    while piece := sock.recv(65536):
        received += piece
    return received


# ---------------------------------------------------------------------- canned statuses
@pytest.mark.parametrize(
    ("kind", "message", "type_", "code"),
    [
        (
            "concurrency",
            f"Concurrency limit reached for requests: {MODEL}-project limit reached",
            "rate_limit_error",
            "rate_limit_exceeded",
        ),
        (
            "quota",
            "You exceeded your current quota, please check your plan and billing details",
            "insufficient_quota",
            "insufficient_quota",
        ),
        (
            "personal",
            "W&B Inference isn't available for personal accounts.",
            "invalid_request_error",
            "personal_account",
        ),
    ],
)
def test_429_kinds(
    server: LocalServer,
    http: httpx.Client,
    kind: Any,
    message: str,
    type_: str,
    code: str,
    error_schema: dict[str, Any],
) -> None:
    server.faults.push(Fault.status(429, kind=kind))
    response = http.post("/chat/completions", json=BODY)
    assert response.status_code == 429
    assert response.json() == {"error": {"message": message, "type": type_, "code": code, "param": None}}
    jsonschema.validate(response.json(), error_schema)
    assert "retry-after" not in response.headers  # W&B does not document one
    assert http.post("/chat/completions", json=BODY).status_code == 200  # times=1


@pytest.mark.parametrize(
    ("status", "kind", "needle"),
    [
        (402, None, "exceeded your current quota"),
        (403, None, "Country, region, or territory not supported"),
        (403, "gateway", "gateway is not enabled"),
        (500, None, "The server had an error while processing your request"),
        (503, None, "The engine is currently overloaded"),
        (418, None, "I'm a Teapot"),
    ],
)
def test_other_statuses(
    server: LocalServer, http: httpx.Client, status: int, kind: Any, needle: str, error_schema: dict[str, Any]
) -> None:
    server.faults.push(Fault.status(status, kind=kind))
    response = http.post("/chat/completions", json=BODY)
    assert response.status_code == status
    jsonschema.validate(response.json(), error_schema)
    assert needle in response.json()["error"]["message"]


def test_retry_after_forms(server: LocalServer, http: httpx.Client) -> None:
    when = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    server.faults.push(Fault.status(429, retry_after=2, retry_after_ms=1500))
    server.faults.push(Fault.status(503, retry_after=when))
    server.faults.push(Fault.status(503, retry_after=0.5))
    first = http.post("/chat/completions", json=BODY)
    assert (first.headers["retry-after"], first.headers["retry-after-ms"]) == ("2", "1500")
    second = http.post("/chat/completions", json=BODY)
    assert second.headers["retry-after"] == "Wed, 02 Jan 2030 03:04:05 GMT"
    assert email.utils.parsedate_to_datetime(second.headers["retry-after"]) == when
    assert http.post("/chat/completions", json=BODY).headers["retry-after"] == "0.5"


def test_non_json_bodies(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.html(502))
    server.faults.push(Fault.text(500, "upstream connect error"))
    server.faults.push(Fault.detail(503, "overloaded"))
    server.faults.push(Fault.empty(500, retry_after=1))
    server.faults.push(Fault.respond(200, b'{"id": 1', content_type="application/json"))
    html = http.post("/chat/completions", json=BODY)
    assert html.status_code == 502 and html.headers["content-type"] == "text/html"
    assert "<title>502 Bad Gateway</title>" in html.text
    text = http.post("/chat/completions", json=BODY)
    assert text.headers["content-type"].startswith("text/plain") and text.text == "upstream connect error"
    detail = http.post("/chat/completions", json=BODY)
    assert detail.status_code == 503 and detail.json() == {"detail": "overloaded"}
    empty = http.post("/chat/completions", json=BODY)
    assert empty.status_code == 500 and empty.content == b"" and "content-type" not in empty.headers
    assert empty.headers["retry-after"] == "1"
    truncated = http.post("/chat/completions", json=BODY)
    assert truncated.status_code == 200 and truncated.content == b'{"id": 1'


def test_faults_apply_before_authentication() -> None:
    with LocalServer(api_key="k") as srv, httpx.Client(base_url=srv.base_url) as client:
        srv.faults.push(Fault.status(503))
        assert client.get("/models").status_code == 503  # the gateway failed first
        assert client.get("/models").status_code == 401


# ---------------------------------------------------------------------- no response at all
def test_reset_gives_a_connection_error_not_a_status(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.reset())
    with pytest.raises(DROPPED) as caught:
        http.post("/chat/completions", json=BODY)
    assert isinstance(caught.value, httpx.ReadError | httpx.RemoteProtocolError)
    assert server.requests.last.status is None  # no response was ever started
    assert server.requests.last.fault == Fault.reset()
    assert http.post("/chat/completions", json=BODY).status_code == 200  # the server is fine


def test_reset_is_a_real_tcp_rst(server: LocalServer) -> None:
    server.faults.push(Fault.reset())
    request = json.dumps(BODY).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(request)}\r\n\r\n".encode()
            + request
        )
        with pytest.raises(ConnectionResetError):
            _read_all(sock)


def test_close_is_a_disconnect_without_response(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.close())
    with pytest.raises(DROPPED):
        http.post("/chat/completions", json=BODY)
    assert server.requests.last.status is None and server.requests.last.fault == Fault.close()
    # On the wire (not in httpx's or h11's words): an orderly close, not one byte sent.
    server.faults.push(Fault.close())
    request = json.dumps(BODY).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(request)}\r\n\r\n".encode()
            + request
        )
        assert _read_all(sock) == b""


def test_stall_delays_then_answers(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.stall(0.3))
    start = time.monotonic()
    assert http.post("/chat/completions", json=BODY).status_code == 200
    assert time.monotonic() - start >= 0.3
    server.faults.push(Fault.status(503).with_delay(0.2))
    start = time.monotonic()
    assert http.post("/chat/completions", json=BODY).status_code == 503
    assert time.monotonic() - start >= 0.2


def test_stall_longer_than_the_client_timeout(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.stall(30))
    with pytest.raises(httpx.ReadTimeout):
        http.post("/chat/completions", json=BODY, timeout=0.2)
    # The stall ended when the client left: the server answers at once, and stops promptly.
    assert http.post("/chat/completions", json=BODY).status_code == 200


# ---------------------------------------------------------------------- spoiled streams
def test_cut_stream_after_n_chunks(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.cut_stream(after=3))
    received, error = read_until_dropped(http, STREAM)
    assert isinstance(error, httpx.RemoteProtocolError)
    parsed = sse_events(received)
    assert len(parsed) == 3 and all(json.loads(d)["object"] == "chat.completion.chunk" for _, d in parsed)
    assert b"[DONE]" not in received


def test_cut_inside_a_multibyte_character(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.cut_stream(after=2, mid_utf8=True))
    received, _ = read_until_dropped(http, STREAM)
    with pytest.raises(UnicodeDecodeError) as caught:
        received.decode("utf-8")
    assert caught.value.reason == "unexpected end of data"  # the last character is incomplete
    assert received[-1] >= 0xC0  # it ends on the lead byte of a multi-byte character
    complete = received[: received.rindex(b"\n\n") + 2]
    assert len(sse_events(complete)) >= 2  # at least `after` whole chunks came first
    assert received[len(complete) :].startswith(b"data: {")  # then part of the next event


def test_cut_with_reset(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.cut_stream(after=1, reset=True))
    _, error = read_until_dropped(http, STREAM)
    assert isinstance(error, httpx.ReadError | httpx.RemoteProtocolError)


def test_stream_without_done(server: LocalServer, http: httpx.Client) -> None:
    clean = http.post("/chat/completions", json=STREAM).content
    server.faults.push(Fault.no_done())
    spoiled = http.post("/chat/completions", json=STREAM).content  # a clean end of body
    assert clean.endswith(b"data: [DONE]\n\n") and b"[DONE]" not in spoiled
    assert [json.loads(d)["choices"] for _, d in sse_events(spoiled)] == [
        json.loads(d)["choices"] for _, d in sse_events(clean)[:-1]
    ]
    assert json.loads(sse_events(spoiled)[-1][1])["choices"][0]["finish_reason"] == "length"


@pytest.mark.parametrize("as_event", [False, True])
def test_error_inside_the_stream(
    server: LocalServer, http: httpx.Client, as_event: bool, error_schema: dict[str, Any]
) -> None:
    server.faults.push(Fault.stream_error(after=2, event=as_event, message="backend died"))
    raw = http.post("/chat/completions", json=STREAM).content
    parsed = sse_events(raw)
    assert [e for e, _ in parsed] == [None, None, "error" if as_event else None, None]
    error = json.loads(parsed[2][1])
    jsonschema.validate(error, error_schema)
    assert error["error"]["message"] == "backend died"
    assert parsed[3][1] == "[DONE]"  # as vLLM does
    if as_event:
        assert b"event: error\ndata: {" in raw


def test_awkward_stream_decodes_to_the_same_chunks(server: LocalServer, http: httpx.Client) -> None:
    body = {**STREAM, "max_tokens": 6}
    server.faults.push(Fault.awkward_stream(non_ascii=False))
    awkward = http.post("/chat/completions", json=body).content
    clean = http.post("/chat/completions", json=body).content
    assert b"\r\n" in awkward and b": ping\r\n\r\n" in awkward and b"data:\r\n\r\n" in awkward
    assert b"\r\n" not in clean
    chunks = [d for _, d in sse_events(awkward) if d]
    assert [json.loads(d)["choices"] for d in chunks[:-1]] == [
        json.loads(d)["choices"] for _, d in sse_events(clean)[:-1]
    ]
    assert chunks[-1] == "[DONE]"
    assert [d for _, d in sse_events(awkward)].count("") == len(chunks) - 1  # one before each chunk


def test_split_writes_reach_the_client_as_small_reads(server: LocalServer) -> None:
    server.faults.push(Fault.streaming(StreamFault(split=7, split_pause=0.003, crlf=True)))
    request = json.dumps({**STREAM, "max_tokens": 2}).encode()
    reads: list[bytes] = []
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(request)}\r\nConnection: close\r\n\r\n".encode()
            + request
        )
        while piece := sock.recv(65536):
            reads.append(piece)
    body_reads = reads[1:]  # the first read holds the status line and headers
    assert len(body_reads) > 20
    # Each write is one chunk of the chunked encoding: 7 bytes of SSE plus its framing.
    assert sum(len(r) <= len(b"7\r\n") + 7 + 2 for r in body_reads) >= len(body_reads) * 0.8


def test_split_puts_boundaries_inside_utf8_and_crlf(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.awkward_stream(split=1, pings=False, empty_events=False))
    pieces: list[bytes] = []
    with http.stream("POST", "/chat/completions", json={**STREAM, "max_tokens": 8}) as response:
        pieces.extend(response.iter_raw())
    raw = b"".join(pieces)
    assert raw.endswith(b"data: [DONE]\r\n\r\n")
    assert any(ord(ch) > 127 for ch in raw.decode("utf-8"))  # non-ASCII text, split byte by byte
    assert len(sse_events(raw)) == 11  # role, 8 tokens, finish, [DONE]


def test_stall_mid_stream(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.stall_stream(after=2, seconds=1.0))
    arrivals: list[float] = []
    with http.stream("POST", "/chat/completions", json=STREAM) as response:
        start = time.monotonic()
        arrivals.extend(time.monotonic() - start for line in response.iter_lines() if line.startswith("data:"))
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert gaps[1] >= 0.95  # between the 2nd and 3rd chunk
    # Only there: every other gap is far shorter (a margin a loaded 2-core machine keeps).
    assert max(gaps[:1] + gaps[2:]) < 0.5


def test_stream_faults_wait_for_a_streamed_chat(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.cut_stream(after=1))
    assert http.post("/chat/completions", json=BODY).status_code == 200  # not streamed: untouched
    assert http.get("/models").status_code == 200
    assert len(server.faults) == 1
    read_until_dropped(http, STREAM)
    assert len(server.faults) == 0


# ---------------------------------------------------------------------- queue rules
def test_fifo_times_path_and_model_filters(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.status(500), times=2)
    server.faults.push(Fault.status(503))
    server.faults.push(Fault.status(402), path="/models")
    server.faults.push(Fault.status(403), model="other/model")
    statuses = [http.post("/chat/completions", json=BODY).status_code for _ in range(4)]
    assert statuses == [500, 500, 503, 200]
    assert http.get("/models").status_code == 402
    assert http.post("/chat/completions", json={**BODY, "model": "other/model"}).status_code == 403
    assert len(server.faults) == 0
    labels = [r.fault.label if r.fault else None for r in server.requests]
    assert labels == ["500", "500", "503", None, "402", "403"]


def test_times_none_lasts_until_clear(server: LocalServer, http: httpx.Client) -> None:
    server.faults.push(Fault.status(503), times=None, path="/v1/embeddings")
    for _ in range(3):
        assert http.post("/embeddings", json={"model": "BAAI/bge-m3", "input": "x"}).status_code == 503
    server.faults.clear()
    assert http.post("/embeddings", json={"model": "BAAI/bge-m3", "input": "x"}).status_code == 200


def test_faults_for_one_api_key(server: LocalServer, http: httpx.Client) -> None:
    server.faults.for_key("bad-key", Fault.status(402))
    server.faults.for_key("flaky-key", Fault.status(503), times=1)
    for _ in range(2):
        assert http.get("/models", headers={"Authorization": "Bearer bad-key"}).status_code == 402
    assert http.get("/models", headers={"Authorization": "Bearer good-key"}).status_code == 200
    assert http.get("/models", headers={"Authorization": "Bearer flaky-key"}).status_code == 503
    assert http.get("/models", headers={"Authorization": "Bearer flaky-key"}).status_code == 200


# ---------------------------------------------------------------------- header language
def test_header_times_and_id(server: LocalServer, http: httpx.Client) -> None:
    header = {FAULT_HEADER: "429;kind=concurrency;retry_after=1;times=2;id=run-1"}
    responses = [http.post("/chat/completions", json=BODY, headers=header) for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 200]
    assert responses[0].headers["retry-after"] == "1"
    assert responses[0].json()["error"]["code"] == "rate_limit_exceeded"
    fresh = {FAULT_HEADER: "429;kind=concurrency;retry_after=1;times=2;id=run-2"}
    assert http.post("/chat/completions", json=BODY, headers=fresh).status_code == 429
    every = {FAULT_HEADER: "503"}
    assert [http.get("/models", headers=every).status_code for _ in range(2)] == [503, 503]


def test_header_drops_and_spoils(server: LocalServer, http: httpx.Client) -> None:
    with pytest.raises(DROPPED):
        http.post("/chat/completions", json=BODY, headers={FAULT_HEADER: "reset"})
    received, _ = read_until_dropped(http, STREAM, headers={FAULT_HEADER: "cut;after=2;utf8"})
    with pytest.raises(UnicodeDecodeError):
        received.decode()
    raw = http.post("/chat/completions", json=STREAM, headers={FAULT_HEADER: "stream;crlf;no_done"}).content
    assert b"\r\n\r\n" in raw and b"[DONE]" not in raw
    html = http.post("/chat/completions", json=BODY, headers={FAULT_HEADER: "html;status=504"})
    assert html.status_code == 504 and "text/html" in html.headers["content-type"]
    date = http.get("/models", headers={FAULT_HEADER: "503;retry_after_date=30"}).headers["retry-after"]
    delta = email.utils.parsedate_to_datetime(date) - dt.datetime.now(dt.UTC)
    assert 25 <= delta.total_seconds() <= 31


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("429;times=2", "times needs an id"),
        ("explode", "unknown fault 'explode'"),
        ("429;kind=gateway", "kind 'gateway' does not apply to 429"),
        ("reset;after=3", "unknown parameter(s) for 'reset': after"),
        ("cut;after=x", "after must be a whole number"),
        ("stall", "stall needs seconds"),
        ("cut;utf8=maybe", "utf8 must be a flag"),
    ],
)
def test_bad_headers_are_400(http: httpx.Client, value: str, needle: str) -> None:
    response = http.post("/chat/completions", json=BODY, headers={FAULT_HEADER: value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == FAULT_HEADER
    assert needle in error["message"], error["message"]


def test_header_faults_can_be_disabled() -> None:
    with LocalServer(header_faults=False) as srv, httpx.Client(base_url=srv.base_url) as client:
        assert client.get("/models", headers={FAULT_HEADER: "503"}).status_code == 200
