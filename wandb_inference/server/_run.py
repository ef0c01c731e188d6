"""Running the app: `LocalServer` (a background thread, or a task in the running loop) and
the blocking `serve()` behind `wandb-inference serve`.

The listening socket is bound here, before uvicorn starts, so `port=0` gives a free port
known at once; uvicorn is given that socket and a subclass of its h11 protocol that
registers each connection's transport (see `_exchange` for why faults need them).
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import signal
import socket
import sys
import threading
import time
import types
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final, final

import uvicorn
from starlette.types import ASGIApp
from uvicorn.config import LOGGING_CONFIG
from uvicorn.protocols.http.h11_impl import H11Protocol

from wandb_inference._catalog._table import ModelInfo

from ._app import create_app
from ._chat import ReasoningField
from ._exchange import Connections
from ._fault_header import FAULT_HEADER
from ._log import RequestLog
from ._queue import FaultQueue
from ._state import ServerOptions, ServerState

__all__ = ["LocalServer", "serve"]

_START_TIMEOUT: Final = 10.0
_STOP_TIMEOUT: Final = 10.0
_POLL: Final = 0.002
# Streams and stalls end when their client leaves; this bounds the ones that do not.
_GRACEFUL_SHUTDOWN: Final = 3


def _protocol_class(connections: Connections) -> type[H11Protocol]:
    """uvicorn's h11 protocol, registering every connection's transport while it is open."""

    class _RegisteringProtocol(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            connections.add(self.client, transport)

        def connection_lost(self, exc: Exception | None) -> None:
            connections.discard(self.client)
            super().connection_lost(exc)

    return _RegisteringProtocol


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve host {host!r}: {exc}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


def _check_limit(model: str, limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"concurrency limit for {model!r} must be an int >= 1, got {limit!r}")


def _url_host(host: str) -> str:
    """The host a client should dial: wildcard addresses mean loopback."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "[::1]"
    return f"[{host}]" if address.version == 6 else host


@final
class LocalServer:
    """A local OpenAI-compatible W&B Inference server on 127.0.0.1, for demos and tests.

    `with LocalServer() as server:` runs uvicorn in a background thread (any event loop,
    or none, can talk to it); `async with LocalServer() as server:` runs it as a task in
    the running loop. Either way `server.base_url` is ready when the block starts and
    everything is closed when it ends.

    Args:
        api_key: when set, requests must carry `Authorization: Bearer <api_key>` (401).
        host: the interface to listen on.
        port: the port; 0 picks a free one.
        pace: seconds between streamed tokens (a non-streamed reply waits as long as its
            stream would take).
        service_time: seconds every admitted chat or embeddings request holds its
            concurrency slot before its reply starts (on top of `pace`): a fixed service
            time for load tests.
        seed: mixed into every reply's PRNG: another seed, other words.
        models: more model ids to serve, beside the catalog's: a plain id is a chat
            model; a `ModelInfo` brings its capabilities (and replaces a catalog row).
        concurrency_limits: at most this many requests in flight per model; more get
            the service's 429 `rate_limit_exceeded` at once (`set_concurrency_limit`
            changes them while serving).
        reasoning_field: `reasoning`, or the pre-April-2026 name `reasoning_content`.
        projects: when set, the `OpenAI-Project` header must name one of these (a wrong
            one gives 401, none gives the personal-account 429).
        header_faults: obey the `X-Wandb-Fault` request header.
        log_level: uvicorn's log level (`warning` keeps tests quiet).
        access_log: print uvicorn's access log (one line per request).
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        pace: float = 0.0,
        service_time: float = 0.0,
        seed: int = 0,
        models: Iterable[str | ModelInfo] | None = None,
        concurrency_limits: Mapping[str, int] | None = None,
        reasoning_field: ReasoningField = "reasoning",
        projects: Collection[str] | None = None,
        header_faults: bool = True,
        log_level: str | int = "warning",
        access_log: bool = False,
    ) -> None:
        if pace < 0:
            raise ValueError(f"pace must be >= 0, got {pace}")
        if not service_time >= 0:
            raise ValueError(f"service_time must be >= 0, got {service_time}")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port}")
        limits = dict(concurrency_limits or {})
        for model, limit in limits.items():
            _check_limit(model, limit)
        if reasoning_field not in ("reasoning", "reasoning_content"):
            raise ValueError(f"reasoning_field must be 'reasoning' or 'reasoning_content', got {reasoning_field!r}")
        options = ServerOptions(
            api_key=api_key,
            pace=pace,
            service_time=service_time,
            seed=seed,
            models=tuple(models or ()),
            concurrency_limits=tuple(limits.items()),
            reasoning_field=reasoning_field,
            projects=None if projects is None else frozenset(projects),
            header_faults=header_faults,
        )
        self._state = ServerState(options)
        self._app = create_app(self._state)
        self._host = host
        self._requested_port = port
        self._log_level = log_level
        self._access_log = access_log
        self._port: int | None = None
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread_error: Exception | None = None

    # ------------------------------------------------------------------ state
    @property
    def faults(self) -> FaultQueue:
        """The faults to inject (`push`, `for_key`, `clear`)."""
        return self._state.faults

    @property
    def requests(self) -> RequestLog:
        """Every request received, with its headers, body, fault and status."""
        return self._state.requests

    def set_concurrency_limit(self, model: str, limit: int | None) -> None:
        """Change a model's concurrency limit while serving (None: unlimited).

        Requests already in flight go on; new ones are refused while the model has
        `limit` or more in flight. Safe to call from any thread.

        Raises:
            ValueError: `limit` is below 1.
        """
        if limit is None:
            self._state.limits.pop(model, None)
        else:
            _check_limit(model, limit)
            self._state.limits[model] = limit

    def in_flight(self, model: str) -> int:
        """How many requests for `model` hold a concurrency slot now."""
        return self._state.in_flight.get(model, 0)

    @property
    def app(self) -> ASGIApp:
        """The ASGI app itself (e.g. for `httpx.ASGITransport`; faults that drop the
        connection need the running server)."""
        return self._app

    @property
    def port(self) -> int:
        """The port listened on.

        Raises:
            RuntimeError: the server is not running.
        """
        if self._port is None:
            raise RuntimeError("the server is not running: use `with LocalServer() as server:`")
        return self._port

    @property
    def url(self) -> str:
        """`http://127.0.0.1:<port>`: the root, without `/v1`."""
        return f"http://{_url_host(self._host)}:{self.port}"

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>/v1`: what clients take as their base URL."""
        return f"{self.url}/v1"

    @property
    def running(self) -> bool:
        """Whether the server is serving."""
        return self._server is not None and self._server.started and not self._server.should_exit

    def __repr__(self) -> str:
        where = self.base_url if self._port is not None else "not running"
        return f"LocalServer({where})"

    # ------------------------------------------------------------------ uvicorn
    def _prepare(self) -> tuple[uvicorn.Server, socket.socket]:
        if self._server is not None:
            raise RuntimeError("this LocalServer is already running")
        config = uvicorn.Config(
            self._app,
            http=_protocol_class(self._state.connections),
            ws="none",
            lifespan="off",
            loop="asyncio",
            # Quiet by default; with an access log, uvicorn's own formatting to stderr.
            log_config=copy.deepcopy(LOGGING_CONFIG) if self._access_log else None,
            log_level=self._log_level,
            access_log=self._access_log,
            # scope["client"] must stay the socket's peer: it finds the transport to drop.
            proxy_headers=False,
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN,
        )
        sock = _bind(self._host, self._requested_port)
        self._port = int(sock.getsockname()[1])
        self._socket = sock
        self._server = uvicorn.Server(config)
        self._thread_error = None
        return self._server, sock

    def _forget(self) -> None:
        if self._socket is not None:
            self._socket.close()  # uvicorn closed it already; closing twice is harmless
        self._server = None
        self._socket = None
        self._thread = None
        self._task = None
        self._port = None

    # ------------------------------------------------------------------ thread
    def start(self) -> None:
        """Serve from a background thread; return once connections are accepted.

        Raises:
            RuntimeError: already running, or uvicorn failed to start.
            TimeoutError: uvicorn did not start in time.
            OSError: the address cannot be bound.
        """
        server, sock = self._prepare()
        self._thread = threading.Thread(
            target=self._thread_main, args=(server, sock), name=f"wandb-inference-server-{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not self._thread.is_alive():
                error = self._thread_error
                self._forget()
                raise RuntimeError(f"the local server failed to start: {error!r}") from error
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the local server did not start within {_START_TIMEOUT} s")
            time.sleep(_POLL)

    def _thread_main(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            server.run(sockets=[sock])
        except Exception as exc:  # reported by start(); the thread has nowhere to raise to
            self._thread_error = exc

    def stop(self) -> None:
        """Stop a server started with `start()` (or `with`); waits for the thread to end."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(_STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(_STOP_TIMEOUT)
        self._forget()

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ task
    async def __aenter__(self) -> LocalServer:
        server, sock = self._prepare()
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        self._task = task
        while not server.started:
            if task.done():
                self._forget()
                await task  # raises uvicorn's error
                raise RuntimeError("the local server stopped during start-up")
            await asyncio.sleep(_POLL)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: types.TracebackType | None
    ) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await task
        finally:
            self._forget()


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    *,
    pace: float = 0.0,
    seed: int = 0,
    models: Iterable[str | ModelInfo] | None = None,
    concurrency_limits: Mapping[str, int] | None = None,
    reasoning_field: ReasoningField = "reasoning",
    log_level: str | int = "info",
    access_log: bool = True,
) -> None:
    """Run the local server until SIGINT or SIGTERM (`wandb-inference serve`).

    Prints the base URL once the server accepts connections. Call it from the main
    thread (signals are only delivered there).

    Args:
        host: the interface to listen on.
        port: the port (0 picks a free one, printed).
        api_key: when set, requests must carry it as a bearer token.
        pace: seconds between streamed tokens.
        seed: mixed into every reply's PRNG.
        models: more model ids to serve.
        concurrency_limits: requests in flight allowed per model.
        reasoning_field: `reasoning` or `reasoning_content`.
        log_level: uvicorn's log level.
        access_log: print one line per request.
    """
    stop = threading.Event()
    server = LocalServer(
        api_key,
        host=host,
        port=port,
        pace=pace,
        seed=seed,
        models=models,
        concurrency_limits=concurrency_limits,
        reasoning_field=reasoning_field,
        log_level=log_level,
        access_log=access_log,
    )
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: stop.set())
    try:
        with server:
            auth = "Authorization: Bearer <your key>" if api_key else "any key (or none)"
            print(f"wandb-inference local server: {server.base_url}", flush=True)
            print(f"  auth: {auth}; faults: the {FAULT_HEADER} header; Ctrl+C stops", flush=True)
            while not stop.wait(1.0):
                pass
    finally:
        for sig, handler in previous.items():
            if handler is not None:  # None: installed outside Python, cannot be restored
                signal.signal(sig, handler)
    print("wandb-inference local server: stopped", file=sys.stderr, flush=True)
