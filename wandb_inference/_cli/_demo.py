"""`wandb-inference demo`: a tour of the SDK's main job in one minute.

Against the real service when `WANDB_API_KEY` is set (and `--local` is not given),
otherwise against the local server started for the occasion. The retry part always
uses a local server: it needs a 429 on demand.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

from wandb_inference._client import Client
from wandb_inference._exceptions import APIStatusError, WandbInferenceError

__all__ = ["run_demo"]

CHAT_MODEL = "meta-llama/Llama-3.3-70B-Instruct"
EMBED_MODEL = "BAAI/bge-m3"


def _title(text: str) -> None:
    print(f"\n\x1b[1m{text}\x1b[0m" if sys.stdout.isatty() else f"\n== {text}")


@contextlib.contextmanager
def _local_server(pace: float = 0.0) -> Iterator[Any]:
    try:
        from wandb_inference.server import LocalServer
    except ImportError as exc:  # pragma: no cover - the demo script installs the extra
        raise SystemExit(
            "The demo's local server needs the [server] extra: pip install 'wandb-inference[server]'"
        ) from exc
    with LocalServer(pace=pace) as server:
        yield server


class _AttemptPrinter(logging.Handler):
    """Prints the SDK's per-attempt DEBUG lines with the time since the first."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.start: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        if self.start is None:
            self.start = now
        print(f"   t={now - self.start:4.1f}s  {record.getMessage()}")


def _tour(client: Client, *, local: bool) -> None:
    _title("1. models.list()")
    models = client.models.list()
    for model in list(models)[:8]:
        info = model.info
        extra = f"  ({info.name}, {info.context_window // 1000}k context)" if info else ""
        print(f"   {model.id}{extra}")
    if len(models) > 8:
        print(f"   ... and {len(models) - 8} more")

    _title(f"2. chat.create(model={CHAT_MODEL!r})")
    reply = client.chat.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Say hello to a new user of wandb-inference."}],
        max_tokens=40,
        seed=1,
    )
    print(f"   {reply.text}")
    tokens = reply.usage.total_tokens if reply.usage else "?"
    print(f"   {tokens} tokens in all; request id: {reply.request_id}")

    _title("3. chat.create(..., stream=True): printed as it arrives")
    print("   ", end="", flush=True)
    with client.chat.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": "Tell a very short story about a GPU."}],
        max_tokens=60,
        stream=True,
        stream_options={"include_usage": True},
    ) as stream:
        for text in stream.text_stream():
            print(text, end="", flush=True)
    final = stream.completion
    print(f"\n   finish_reason={final.choices[0].finish_reason}, {len(final.text)} characters")

    _title(f"4. embeddings.create(model={EMBED_MODEL!r})")
    texts = ["a cat sat on the mat", "a kitten on a rug", "quarterly revenue grew"]
    try:
        result = client.embeddings.create(model=EMBED_MODEL, input=texts)
    except APIStatusError as exc:
        print(f"   {type(exc).__name__}: {exc}")
    else:
        vectors = result.embeddings
        print(f"   {len(vectors)} vectors of {len(vectors[0])} floats")
        for i in range(1, len(texts)):
            cos = sum(a * b for a, b in zip(vectors[0], vectors[i], strict=True))
            norm = math.sqrt(sum(a * a for a in vectors[0]) * sum(b * b for b in vectors[i]))
            print(f"   cosine({texts[0]!r}, {texts[i]!r}) = {cos / norm:+.3f}")
    if not local:
        print("   (the real service's catalog may list no embedding model: the error above says so)")


def _retry_tour() -> None:
    _title("5. a 429 with Retry-After: 1, twice, then 200 (local server)")
    from wandb_inference.server import Fault

    with _local_server() as server:
        server.faults.push(Fault.status(429, kind="concurrency", retry_after=1), times=2)
        logger = logging.getLogger("wandb_inference")
        handler = _AttemptPrinter()
        old_level = logger.level
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            with Client(api_key="demo", base_url=server.base_url) as client:
                reply = client.chat.create(
                    model=CHAT_MODEL, messages=[{"role": "user", "content": "retry me"}], max_tokens=8
                )
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
        print(f"   succeeded after the retries: {reply.text!r}")


def run_demo(args: argparse.Namespace) -> int:
    """Run the tour; returns the exit code."""
    real = bool(args.api_key or os.environ.get("WANDB_API_KEY")) and not args.local
    try:
        if real:
            print("wandb-inference demo: against the W&B Inference service (WANDB_API_KEY is set)")
            with Client(api_key=args.api_key, project=args.project, base_url=args.base_url) as client:
                _tour(client, local=False)
        else:
            print("wandb-inference demo: no WANDB_API_KEY, so against a local server started for it")
            with _local_server(pace=0.02) as server, Client(api_key="demo", base_url=server.base_url) as client:
                print(f"   (local server at {server.base_url})")
                _tour(client, local=True)
        _retry_tour()
    except WandbInferenceError as exc:
        print(f"\ndemo stopped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print("\nDone. Next: README.md, or `wandb-inference --help`.")
    return 0
