"""Security: the API key never shows; headers cannot be injected; TLS verifies; redirects keep the key.

"Never shows" is checked by walking objects, not only by reading their repr: every
string and bytes reachable from a result or an error (attributes, slots, `args`, the
`__cause__` / `__context__` chain, requests, responses, headers) is searched for the key,
and so are pickles, copies, formatted tracebacks and every log record of a full run over
real sockets (`wandb_inference`, `httpx` and `httpcore` loggers at DEBUG).

Tracebacks' frame locals are out of scope: the request being sent necessarily holds the
key while it is sent.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import json
import logging
import pickle
import shutil
import ssl
import subprocess
import traceback
import types
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _helpers import BASE_URL, MESSAGES, MODEL, chunk, completion_body, error_body, json_response, sse
from conftest import Either, Sleeps
from test_hostile_server import Peer, RawServer, head, http_chunk, running_servers

import wandb_inference as wi
from wandb_inference._config import Secret

KEY = "wi-key-7Hq2ZxP9-DISTINCTIVE-4k1v"
OTHER_KEY = "wi-key-OTHER-0b3Yt8-DISTINCTIVE"
REDACTED = "[redacted]"
MakeClient = Callable[..., Either]

# Objects from these modules hold sockets, locks and event loops, not requests: walking
# them only costs time. Exceptions are always walked, whatever their module.
_OPAQUE_MODULES = ("httpcore", "anyio", "asyncio", "ssl", "socket", "threading", "h11", "_thread")


def leaks(obj: object, keys: tuple[str, ...] = (KEY, OTHER_KEY)) -> list[str]:
    """The paths under `obj` at which one of `keys` appears (empty: no leak)."""
    needles = [(k, k.encode()) for k in keys]
    found: list[str] = []
    seen: set[int] = set()

    def walk(value: object, path: str, depth: int) -> None:
        if depth > 30 or id(value) in seen:
            return
        seen.add(id(value))
        if isinstance(value, str):
            found.extend(path for text, _ in needles if text in value)
            return
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            found.extend(path for _, raw in needles if raw in data)
            return
        if value is None or isinstance(value, int | float | type | types.ModuleType | types.FunctionType):
            return
        if isinstance(value, BaseException):
            walk(value.args, f"{path}.args", depth + 1)
            walk(value.__cause__, f"{path}.__cause__", depth + 1)
            walk(value.__context__, f"{path}.__context__", depth + 1)
        elif type(value).__module__.split(".")[0] in _OPAQUE_MODULES:
            return
        if isinstance(value, collections.abc.Mapping):
            for k, v in value.items():
                walk(k, f"{path}[key]", depth + 1)
                walk(v, f"{path}[{k!r}]", depth + 1)
            return
        if isinstance(value, list | tuple | set | frozenset):
            for i, item in enumerate(value):
                walk(item, f"{path}[{i}]", depth + 1)
            return
        for name, attr in vars(value).items() if hasattr(value, "__dict__") else ():
            walk(attr, f"{path}.{name}", depth + 1)
        for cls in type(value).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if isinstance(slot, str) and hasattr(value, slot):
                    walk(getattr(value, slot), f"{path}.{slot}", depth + 1)

    walk(obj, "obj", 0)
    return found


def assert_no_key_anywhere(obj: object) -> None:
    """No key in `obj`'s repr, str and object graph, nor in its shallow and deep copies."""
    assert KEY not in repr(obj) and KEY not in str(obj)
    assert leaks(obj) == []
    for clone in (copy.copy(obj), copy.deepcopy(obj)):
        assert type(clone) is type(obj)
        assert leaks(clone) == []


async def aclose(closeable: Any) -> None:
    """Close a client of either colour (the SDK's or httpx's)."""
    if isinstance(closeable, wi.AsyncClient | httpx.AsyncClient):
        await closeable.aclose()
    else:
        closeable.close()


def with_key_request() -> httpx.Request:
    return httpx.Request("POST", BASE_URL + "/chat/completions", headers={"Authorization": f"Bearer {KEY}"})


@pytest.fixture
def serve() -> Iterator[Callable[..., RawServer]]:
    """Start raw servers (test_hostile_server's) for a test; all are stopped at its end."""
    with running_servers() as start:
        yield start


def test_the_leak_finder_finds_the_key() -> None:
    """The walker is what the other tests rely on: it must see a key where one is."""
    request = with_key_request()
    assert leaks(request)
    assert leaks(httpx.Response(200, request=request))

    def fail() -> None:
        try:
            raise httpx.ConnectError("refused", request=request)
        except httpx.ConnectError as exc:
            raise wi.APIConnectionError("could not connect") from exc

    with pytest.raises(wi.APIConnectionError) as info:
        fail()
    assert [p for p in leaks(info.value) if p.startswith("obj.__cause__")]
    assert leaks(Secret(value=KEY))  # the client's own copy of the key is reachable...
    assert KEY not in repr(Secret(value=KEY))  # ...but never shown


# --------------------------------------------------------------------------- objects


async def test_clients_options_and_bound_models_never_show_the_key(kind: str) -> None:
    cls: Any = wi.AsyncClient if kind == "async" else wi.Client
    client = cls(KEY, project="team/proj")
    derived = client.with_options(api_key=OTHER_KEY, project="team/other", timeout=5)
    same_key = client.with_options(max_retries=0)
    things = [
        client,
        derived,
        same_key,
        client._options,
        derived._options,
        client.llama_3_3_70b(),
        derived.llama_3_3_70b(model="wandb-artifact:///team/proj/lora:v1"),
        client.bge_m3(),
        client.chat,
        client.models,
    ]
    try:
        for thing in things:
            for text in (repr(thing), str(thing), f"{thing}", repr(getattr(thing, "__dict__", None))):
                assert KEY not in text and OTHER_KEY not in text, text
        for holder in (client, derived, client._options, client._options.api_key, client.llama_3_3_70b()):
            with pytest.raises(TypeError, match="API keys cannot be pickled"):
                pickle.dumps(holder)
        # The key is still there for the one place that needs it.
        assert client._options.headers()["Authorization"] == f"Bearer {KEY}"
        assert derived._options.headers()["Authorization"] == f"Bearer {OTHER_KEY}"
    finally:
        await aclose(client)


class _Recorder:
    """A MockTransport handler: replays `responses` (the last repeats), records requests."""

    def __init__(self, *responses: Callable[[httpx.Request], httpx.Response]) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        respond = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        return respond(request)


def _sse_response(body: bytes) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})


def _json(status: int, body: Any, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    return lambda _: json_response(status, body, **headers)


async def test_results_never_carry_the_key(make_client: MakeClient) -> None:
    embeddings = {"object": "list", "model": "BAAI/bge-m3", "data": [{"index": 0, "embedding": [0.5, 1.0]}]}
    models = {"object": "list", "data": [{"id": MODEL, "object": "model"}]}
    rec = _Recorder(
        _json(200, completion_body()),
        _json(200, models),
        _json(200, embeddings),
        _sse_response(sse(chunk("Hel", role="assistant"), chunk("lo"))),
    )
    client = make_client(rec, api_key=KEY)
    results: list[Any] = [
        await client.call("chat.create", model=MODEL, messages=MESSAGES),
        await client.call("models.list"),
        await client.call("embeddings.create", model="BAAI/bge-m3", input="x", encoding_format="float"),
    ]
    stream = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=True)
    results += await client.collect(stream)
    results.append(stream.completion)
    # The key was really sent: there was something to leak.
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in rec.requests)
    assert len(rec.requests) == 4
    for result in results:
        assert_no_key_anywhere(result)
        data = pickle.dumps(result)
        assert KEY.encode() not in data
        # Copies stay whole: same JSON (the generated `UNSET` must survive as itself).
        for clone in (pickle.loads(data), copy.copy(result), copy.deepcopy(result)):
            assert json.dumps(clone.to_dict()) == json.dumps(result.to_dict())
    for kept in (results[0], results[1], results[2], stream):
        response = kept.http_response if hasattr(kept, "http_response") else kept.response
        assert response.request.headers["authorization"] == REDACTED
    assert KEY not in repr(stream) and leaks(stream) == []


class _BreakingStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """A body that sends one event, then loses the connection."""

    def __init__(self, first: bytes) -> None:
        self.first = first

    def __iter__(self) -> Iterator[bytes]:
        yield self.first
        raise httpx.ReadError("connection reset by peer")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.first
        raise httpx.ReadError("connection reset by peer")


def _raise(exc_type: type[httpx.TransportError]) -> Callable[[httpx.Request], httpx.Response]:
    def respond(request: httpx.Request) -> httpx.Response:
        raise exc_type("it failed", request=request)  # carries the request, key and all

    return respond


_ERROR_CASES: list[tuple[str, Callable[[httpx.Request], httpx.Response], bool, type[wi.APIError]]] = [
    ("400", _json(400, error_body("bad temperature")), False, wi.BadRequestError),
    ("401", _json(401, error_body("Authentication failed")), False, wi.AuthenticationError),
    ("402", _json(402, error_body("You exceeded your current quota")), False, wi.QuotaExceededError),
    ("403", _json(403, error_body("Country, region, or territory not supported")), False, wi.PermissionDeniedError),
    ("404", _json(404, error_body("model not found")), False, wi.NotFoundError),
    ("429", _json(429, error_body("Concurrency limit reached", "rate_limit_exceeded")), False, wi.RateLimitError),
    ("429-personal", _json(429, error_body("not for personal accounts")), False, wi.PersonalAccountError),
    ("500", _json(500, error_body("boom"), **{"x-request-id": "r1"}), False, wi.InternalServerError),
    ("503", _json(503, error_body("overloaded"), **{"retry-after": "0"}), False, wi.ServiceUnavailableError),
    ("307", lambda _: httpx.Response(307, headers={"location": "https://elsewhere.test/"}), False, wi.APIStatusError),
    ("connect", _raise(httpx.ConnectError), False, wi.APIConnectionError),
    ("protocol", _raise(httpx.RemoteProtocolError), False, wi.APIConnectionError),
    ("read-timeout", _raise(httpx.ReadTimeout), False, wi.APITimeoutError),
    ("connect-timeout", _raise(httpx.ConnectTimeout), False, wi.APITimeoutError),
    (
        "html-200",
        lambda _: httpx.Response(200, content=b"<html/>", headers={"content-type": "text/html"}),
        False,
        wi.APIResponseValidationError,
    ),
    ("shape-200", _json(200, {"hello": "world"}), False, wi.APIResponseValidationError),
    ("stream-cut", _sse_response(sse(chunk("Hel"), done=False)), True, wi.StreamInterruptedError),
    ("stream-event", _sse_response(sse(chunk("Hel"), {"error": {"message": "died"}})), True, wi.StreamEventError),
    ("stream-json", _json(200, error_body("no streaming")), True, wi.StreamEventError),
    ("stream-bad-json", _sse_response(sse("{not json")), True, wi.StreamError),
    (
        "stream-reset",
        lambda _: httpx.Response(
            200, stream=_BreakingStream(sse(chunk("Hel"), done=False)), headers={"content-type": "text/event-stream"}
        ),
        True,
        wi.StreamInterruptedError,
    ),
]


@pytest.mark.parametrize(("respond", "stream", "cls"), [c[1:] for c in _ERROR_CASES], ids=[c[0] for c in _ERROR_CASES])
async def test_errors_never_carry_the_key(
    make_client: MakeClient,
    respond: Callable[[httpx.Request], httpx.Response],
    stream: bool,
    cls: type[wi.APIError],
) -> None:
    rec = _Recorder(respond)
    client = make_client(rec, api_key=KEY, max_retries=1)

    async def call() -> None:
        reply = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=stream)
        await client.collect(reply)

    with pytest.raises(wi.APIError) as info:
        await call()
    error = info.value
    assert type(error) is cls
    assert rec.requests and rec.requests[0].headers["authorization"] == f"Bearer {KEY}"
    # The request (and the response's request) kept on the error are redacted copies.
    assert error.request is not None and error.request.headers["authorization"] == REDACTED
    response = getattr(error, "response", None)
    if response is not None:
        assert response.request.headers["authorization"] == REDACTED
    assert KEY not in repr(error.args)
    assert KEY not in "".join(traceback.format_exception(error))
    assert_no_key_anywhere(error)
    # Errors pickle (a process pool sends them back) without the key, and come back whole.
    data = pickle.dumps(error)
    assert KEY.encode() not in data
    clone = pickle.loads(data)
    assert type(clone) is cls and str(clone) == str(error) and clone.args == error.args
    assert vars(clone).keys() == vars(error).keys()
    for copied in (copy.copy(error), copy.deepcopy(error)):
        assert str(copied) == str(error)


# --------------------------------------------------------------------------- logs


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def debug_records() -> Iterator[list[logging.LogRecord]]:
    """Every log record, at DEBUG, from the root logger down (httpx and httpcore included)."""
    handler = _Records()
    names = ["", "wandb_inference", "httpx", "httpcore"]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    try:
        yield handler.records
    finally:
        logging.getLogger().removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _reply(status: str, body: Any, ctype: str = "application/json") -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return head(status, f"content-type: {ctype}", f"content-length: {len(raw)}") + raw


async def test_debug_logs_of_a_full_run_never_show_the_key(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps, debug_records: list[logging.LogRecord]
) -> None:
    """Success, retries, failures, streams and timeouts over real sockets, all logged at DEBUG."""
    stream_ok = sse(chunk("Hi", role="assistant"), chunk("!"))
    stream_head = head("200 OK", "content-type: text/event-stream", "transfer-encoding: chunked")
    script: collections.deque[bytes | str] = collections.deque(
        [
            _reply("200 OK", completion_body()),  # success
            _reply("503 Service Unavailable", error_body("overloaded")),  # retried...
            _reply("200 OK", completion_body()),  # ...then fine
            _reply("401 Unauthorized", error_body("Authentication failed")),  # failure
            stream_head + http_chunk(stream_ok) + http_chunk(b""),  # a stream
            "close",  # dropped twice: retried, then a connection error
            "close",
            "stall",  # a stream that stops: read timeout mid-stream
        ]
    )

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        action = script.popleft()
        if action == "close":
            return
        if action == "stall":
            await peer.send(stream_head + http_chunk(sse(chunk("par"), done=False)))
            await asyncio.sleep(3600)
        assert isinstance(action, bytes)
        await peer.send(action)

    server = serve(handler)
    errors: list[BaseException] = []
    cls: Any = wi.AsyncClient if kind == "async" else wi.Client
    sleep = sleeps.async_ if kind == "async" else sleeps.sync
    client = Either(kind, cls(KEY, base_url=server.base_url, project="team/proj", sleep=sleep, timeout=0.5))
    try:
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
        await client.call("chat.create", model=MODEL, messages=MESSAGES)
        for stream in (False, True):
            try:
                reply = await client.call("chat.create", model=MODEL, messages=MESSAGES, stream=stream)
                if stream:
                    await client.collect(reply)
            except wi.APIError as exc:
                errors.append(exc)
        derived = Either(kind, client.client.with_options(max_retries=1))
        for stream in (False, True):
            try:
                reply = await derived.call("chat.create", model=MODEL, messages=MESSAGES, stream=stream)
                if stream:
                    await derived.collect(reply)
            except wi.APIError as exc:
                errors.append(exc)
    finally:
        await client.close()
    assert [type(e) for e in errors] == [wi.AuthenticationError, wi.APIConnectionError, wi.StreamInterruptedError]
    assert len(server.requests) == 8 and all(f"Bearer {KEY}".encode() in r for r in server.requests)
    for error in errors:
        assert leaks(error) == [], leaks(error)
    formatter = logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s")
    for record in debug_records:
        for text in (formatter.format(record), repr(record.args), repr(vars(record))):
            assert KEY not in text, text
    names = {record.name.split(".")[0] for record in debug_records}
    assert {"wandb_inference", "httpx", "httpcore"} <= names
    # httpcore did log the sending of the request headers, just never their values.
    assert any("send_request_headers" in record.getMessage() for record in debug_records)


# --------------------------------------------------------------------------- header injection

_BAD_VALUES = ["v\r\nX-Injected: 1", "v\nX-Injected: 1", "v\rX", "v\x00x", "v\x7f", "v\x1b[31m", "caf\u00e9"]


@pytest.mark.parametrize("bad", _BAD_VALUES, ids=repr)
async def test_header_injection_is_refused_before_anything_is_sent(kind: str, bad: str) -> None:
    rec = _Recorder(_json(200, completion_body()))
    http: Any = httpx.AsyncClient if kind == "async" else httpx.Client
    cls: Any = wi.AsyncClient if kind == "async" else wi.Client
    transport = http(transport=httpx.MockTransport(rec))
    base = {"base_url": BASE_URL, "http_client": transport}
    client = Either(kind, cls(KEY, **base))
    try:
        for options in (
            {"project": f"team/proj{bad}"},
            {"default_headers": {"X-Tag": bad}},
            {"default_headers": {f"X-Tag{bad}": "v"}},
            {"api_key": f"{KEY}{bad}"},
        ):
            with pytest.raises(wi.ConfigurationError) as info:
                cls(**{"api_key": KEY, **base, **options})
            assert KEY not in str(info.value)
            with pytest.raises(wi.ConfigurationError):
                client.client.with_options(**options)
        for headers in ({"X-Tag": bad}, {f"X-Tag{bad}": "v"}, {"Authorization": f"Bearer {bad}"}):
            with pytest.raises(wi.InvalidRequestError):
                await client.call("chat.create", model=MODEL, messages=MESSAGES, extra_headers=headers)
        assert rec.requests == []
        # The same client, with clean values, does send (the refusals were not a broken set-up).
        await client.call("chat.create", model=MODEL, messages=MESSAGES, extra_headers={"X-Tag": "v"})
        assert len(rec.requests) == 1 and rec.requests[0].headers["x-tag"] == "v"
    finally:
        await client.close()
        await aclose(transport)


# --------------------------------------------------------------------------- TLS


def _pool_ssl_context(client: wi.Client | wi.AsyncClient) -> ssl.SSLContext:
    http: Any = client._http if isinstance(client, wi.AsyncClient) else client._pool.get()
    context = http._transport._pool._ssl_context
    assert isinstance(context, ssl.SSLContext)
    return context


async def test_own_pool_verifies_certificates(kind: str) -> None:
    cls: Any = wi.AsyncClient if kind == "async" else wi.Client
    client = cls(KEY)
    try:
        for each in (client, client.with_options(project="team/proj")):
            context = _pool_ssl_context(each)
            assert context.verify_mode == ssl.CERT_REQUIRED
            assert context.check_hostname is True
    finally:
        await aclose(client)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:  # pragma: no cover - depends on the machine
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


async def test_untrusted_certificate_is_refused_before_the_key_is_sent(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps, self_signed: tuple[Path, Path]
) -> None:
    cert, key = self_signed
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)

    async def handler(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(_reply("200 OK", completion_body()))

    server = serve(handler, ssl_context=server_context)
    cls: Any = wi.AsyncClient if kind == "async" else wi.Client
    sleep = sleeps.async_ if kind == "async" else sleeps.sync
    client = Either(kind, cls(KEY, base_url=server.base_url, sleep=sleep, max_retries=0))
    try:
        with pytest.raises(wi.APIConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.call("chat.create", model=MODEL, messages=MESSAGES)
    finally:
        await client.close()
    assert server.connections == 0 and server.requests == []
    # Control: the same server, trusted explicitly, is reached (so the refusal was the check).
    trusting = ssl.create_default_context(cafile=str(cert))
    http: Any = httpx.AsyncClient(verify=trusting) if kind == "async" else httpx.Client(verify=trusting)
    trusted = Either(kind, cls(KEY, base_url=server.base_url, http_client=http, max_retries=0))
    try:
        reply = await trusted.call("chat.create", model=MODEL, messages=MESSAGES)
    finally:
        await trusted.close()
        await aclose(http)
    assert reply.text == "Hello there" and len(server.requests) == 1


# --------------------------------------------------------------------------- redirects


async def test_own_pool_does_not_follow_redirects_to_another_host(
    serve: Callable[..., RawServer], kind: str, sleeps: Sleeps
) -> None:
    async def elsewhere(peer: Peer) -> None:
        await peer.read_request()
        await peer.send(_reply("200 OK", completion_body()))

    other = serve(elsewhere)

    async def redirect(peer: Peer) -> None:
        await peer.read_request()
        location = f"{other.base_url}/chat/completions"
        await peer.send(head("307 Temporary Redirect", f"location: {location}", "content-length: 0"))

    server = serve(redirect)
    cls: Any = wi.AsyncClient if kind == "async" else wi.Client
    sleep = sleeps.async_ if kind == "async" else sleeps.sync
    client = Either(kind, cls(KEY, base_url=server.base_url, sleep=sleep))
    try:
        with pytest.raises(wi.APIStatusError, match="does not follow redirects") as info:
            await client.call("chat.create", model=MODEL, messages=MESSAGES)
    finally:
        await client.close()
    assert info.value.status_code == 307 and other.base_url in str(info.value)
    assert len(server.requests) == 1 and other.connections == 0


@pytest.mark.parametrize(
    ("target", "keeps_key"),
    [
        ("https://other.test/v1/chat/completions", False),  # another host
        ("https://inference.test:8443/v1/chat/completions", False),  # same host, another port
        ("http://inference.test/v1/chat/completions", False),  # downgraded to plain http
        ("https://inference.test/v2/chat/completions", True),  # same origin: control case
    ],
)
async def test_user_client_following_redirects_strips_the_key_cross_origin(
    kind: str, target: str, keeps_key: bool
) -> None:
    """With a user's `follow_redirects=True` pool (both colours), httpx drops the key off-origin."""
    received: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        if len(received) == 1:
            return httpx.Response(307, headers={"location": target})
        return json_response(200, completion_body())

    transport = httpx.MockTransport(handler)
    http: Any = (
        httpx.AsyncClient(transport=transport, follow_redirects=True)
        if kind == "async"
        else httpx.Client(transport=transport, follow_redirects=True)
    )
    cls: Any = wi.AsyncClient if kind == "async" else wi.Client
    client = Either(kind, cls(KEY, base_url=BASE_URL, http_client=http))
    try:
        reply = await client.call("chat.create", model=MODEL, messages=MESSAGES)
    finally:
        await client.close()
        await aclose(http)
    assert reply.text == "Hello there"
    assert [str(r.url) for r in received] == [BASE_URL + "/chat/completions", target]
    assert received[0].headers["authorization"] == f"Bearer {KEY}"
    assert ("authorization" in received[1].headers) is keeps_key
    assert reply.http_response.request.headers.get("authorization") in (None, REDACTED)
