"""The `wandb-inference` command line: models, chat, embed, batch, serve, demo.

Built on argparse (no extra dependency, nothing imported by `import wandb_inference`).
Errors print one line with what to do and exit with a documented code, never a
traceback; Ctrl-C during a stream stops cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn, TextIO

from wandb_inference._exceptions import (
    APIConnectionError,
    APIError,
    APIStatusError,
    ConfigurationError,
    InvalidRequestError,
    StreamError,
    WandbInferenceError,
)
from wandb_inference._version import __version__

from ._batch import add_batch_parser, cmd_batch

__all__ = ["EXIT_CODES", "main"]

EXIT_OK = 0
EXIT_API = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_CONNECTION = 4
EXIT_STREAM = 5
EXIT_LINES_FAILED = 6
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_API: "the service answered with an error (bad key, unknown model, quota, ...)",
    EXIT_USAGE: "invalid command line or arguments",
    EXIT_CONFIG: "configuration problem (no API key, bad project or base URL)",
    EXIT_CONNECTION: "the service could not be reached (network, timeout)",
    EXIT_STREAM: "a stream broke mid-way (the text received so far was printed)",
    EXIT_LINES_FAILED: "batch: finished, but some lines failed (they are in the errors file)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}

_EPILOG = "exit codes:\n" + "\n".join(f"  {code:<4} {what}" for code, what in EXIT_CODES.items())


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _client_flags() -> _Parser:
    common = _Parser(add_help=False)
    group = common.add_argument_group("connection (default: environment, like the SDK)")
    group.add_argument("--api-key", help="W&B API key (default: WANDB_API_KEY, then ~/.netrc)")
    group.add_argument("--project", help="team/project sent as OpenAI-Project (default: WANDB_INFERENCE_PROJECT)")
    group.add_argument("--base-url", help="API base URL (default: WANDB_INFERENCE_BASE_URL or the W&B service)")
    group.add_argument("--timeout", type=float, help="seconds per attempt (default: SDK default)")
    group.add_argument("--max-retries", type=int, help="retries of retryable failures (default 3)")
    return common


TRACE_WEAVE_ENV = "WANDB_INFERENCE_TRACE_WEAVE"


def _trace_flags() -> _Parser:
    """`--trace-weave`: for the commands that make model calls (chat, embed, batch)."""
    flags = _Parser(add_help=False)
    group = flags.add_argument_group("tracing")
    group.add_argument(
        "--trace-weave",
        metavar="TEAM/PROJECT",
        default=os.environ.get(TRACE_WEAVE_ENV) or None,
        help=f"send a span per call to this W&B Weave project (needs the [otel] extra; default: {TRACE_WEAVE_ENV})",
    )
    return flags


# Tracer providers set up by --trace-weave: shut down (flushed) before the CLI exits.
_providers: list[Any] = []


def _flush_traces() -> None:
    while _providers:
        _providers.pop().shutdown()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and documentation)."""
    common = _client_flags()
    traced = [common, _trace_flags()]
    parser = _Parser(
        prog="wandb-inference",
        description="Talk to W&B Inference (or any OpenAI-compatible server) from the shell.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"wandb-inference {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser(
        "models",
        parents=[common],
        help="list the served models",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print JSON (one object per line)")

    p = sub.add_parser(
        "chat",
        parents=traced,
        help="chat with a model (streams by default)",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-m", "--model", required=True, help="model id, e.g. meta-llama/Llama-3.3-70B-Instruct")
    p.add_argument("prompt", nargs="*", help="the prompt (default: read stdin)")
    p.add_argument("-s", "--system", help="a system message")
    p.add_argument("--max-tokens", type=int, help="cap on generated tokens")
    p.add_argument("--temperature", type=float, help="sampling temperature (0-2)")
    p.add_argument("--no-stream", action="store_true", help="wait for the whole reply")
    p.add_argument("--json", action="store_true", help="print the whole completion as JSON")
    p.add_argument("--hide-reasoning", action="store_true", help="do not print reasoning text")

    p = sub.add_parser(
        "embed",
        parents=traced,
        help="embed texts (args or stdin lines) as JSON lines",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-m", "--model", required=True, help="embeddings model id, e.g. BAAI/bge-m3")
    p.add_argument("texts", nargs="*", help="texts to embed (default: one per stdin line)")
    p.add_argument("--dimensions", type=int, help="truncate vectors to this size")

    add_batch_parser(sub, traced)

    p = sub.add_parser("serve", help="run the local OpenAI-compatible server (needs the [server] extra)")
    p.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--api-key", help="require this bearer key (default: accept any)")
    p.add_argument("--pace", type=float, default=0.0, help="seconds between streamed tokens")

    p = sub.add_parser(
        "demo",
        parents=[common],
        help="a tour of the SDK (the real service if WANDB_API_KEY is set, else a local server)",
    )
    p.add_argument("--local", action="store_true", help="always use a local server")
    return parser


# --------------------------------------------------------------------------- helpers


def _setup_tracing(args: argparse.Namespace) -> None:
    """`--trace-weave TEAM/PROJECT`: spans of this command's calls go to W&B Weave."""
    if getattr(args, "trace_weave", None):
        from wandb_inference._tracing._weave import to_weave

        _providers.append(to_weave(args.trace_weave, api_key=args.api_key))


def _traced_batch(args: argparse.Namespace) -> int:
    _setup_tracing(args)
    return cmd_batch(args, _exit_code)


def _client(args: argparse.Namespace) -> Any:
    from wandb_inference._client import Client

    _setup_tracing(args)

    return Client(
        api_key=args.api_key,
        project=args.project,
        base_url=args.base_url,
        timeout=args.timeout,
        max_retries=args.max_retries,
    )


def _style(stream: TextIO, code: str, text: str) -> str:
    if stream.isatty() and not os.environ.get("NO_COLOR"):
        return f"\x1b[{code}m{text}\x1b[0m"
    return text


def _read_prompt(args: argparse.Namespace) -> str:
    if args.prompt and args.prompt != ["-"]:
        return " ".join(args.prompt)
    if sys.stdin is None or sys.stdin.isatty():
        raise InvalidRequestError('give a prompt: wandb-inference chat -m MODEL "Hello" (or pipe it on stdin)')
    text = sys.stdin.read()
    if not text.strip():
        raise InvalidRequestError("the prompt read from stdin is empty")
    return text


def _stdin_lines() -> Iterator[str]:
    if sys.stdin is None or sys.stdin.isatty():
        raise InvalidRequestError("give texts: wandb-inference embed -m MODEL 'text' ... (or pipe lines on stdin)")
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line.strip():
            yield line


# --------------------------------------------------------------------------- commands


def _cmd_models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        models = client.models.list()
    if args.json:
        for model in models:
            info = model.info
            row = model.to_dict()
            if info is not None:
                row["catalog"] = {
                    "name": info.name,
                    "context_window": info.context_window,
                    "stage": info.lifecycle.stage,
                }
            print(json.dumps(row))
        return EXIT_OK
    rows = []
    for model in models:
        info = model.info
        rows.append(
            (
                model.id,
                info.name if info else "",
                f"{info.context_window // 1000}k" if info else "",
                info.lifecycle.stage if info else "unknown",
            )
        )
    if not rows:
        print("(the server listed no models; this is never authoritative, try again later)")
        return EXIT_OK
    header = ("ID", "NAME", "CONTEXT", "STAGE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    for row in [header, *rows]:
        print("  ".join(col.ljust(w) for col, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _cmd_chat(args: argparse.Namespace) -> int:
    prompt = _read_prompt(args)
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    params: dict[str, Any] = {}
    if args.max_tokens is not None:
        params["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        params["temperature"] = args.temperature
    out, err = sys.stdout, sys.stderr
    with _client(args) as client:
        if args.no_stream or args.json:
            reply = client.chat.create(model=args.model, messages=messages, **params)
            if args.json:
                print(json.dumps(reply.to_dict(), ensure_ascii=False))
                return EXIT_OK
            if reply.reasoning and not args.hide_reasoning:
                err.write(_style(err, "2", reply.reasoning.strip()) + "\n\n")
            out.write(reply.text + "\n")
            return EXIT_OK
        with client.chat.create(model=args.model, messages=messages, stream=True, **params) as stream:
            in_reasoning = False
            try:
                for chunk in stream:
                    if chunk.reasoning and not args.hide_reasoning:
                        in_reasoning = True
                        err.write(_style(err, "2", chunk.reasoning))
                        err.flush()
                    if chunk.text:
                        if in_reasoning:
                            err.write("\n\n")
                            err.flush()
                            in_reasoning = False
                        out.write(chunk.text)
                        out.flush()
            finally:
                out.write("\n")
                out.flush()
    return EXIT_OK


def _cmd_embed(args: argparse.Namespace) -> int:
    texts = list(args.texts) if args.texts else list(_stdin_lines())
    if not texts:
        raise InvalidRequestError("nothing to embed")
    params: dict[str, Any] = {}
    if args.dimensions is not None:
        params["dimensions"] = args.dimensions
    with _client(args) as client:
        batch = 64
        for start in range(0, len(texts), batch):
            part = texts[start : start + batch]
            result = client.embeddings.create(model=args.model, input=part, **params)
            for i, vector in enumerate(result.embeddings):
                row = {"index": start + i, "text": part[i], "embedding": vector}
                sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            sys.stdout.flush()
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from wandb_inference.server import serve
    except ImportError as exc:
        raise ConfigurationError(
            f"the local server needs the [server] extra ({exc.name} is missing): pip install 'wandb-inference[server]'"
        ) from exc
    serve(host=args.host, port=args.port, api_key=args.api_key, pace=args.pace)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(args)


_COMMANDS = {
    "models": _cmd_models,
    "chat": _cmd_chat,
    "embed": _cmd_embed,
    "batch": lambda args: _traced_batch(args),
    "serve": _cmd_serve,
    "demo": _cmd_demo,
}


def _exit_code(exc: WandbInferenceError) -> int:
    if isinstance(exc, ConfigurationError | InvalidRequestError):
        return EXIT_CONFIG if isinstance(exc, ConfigurationError) else EXIT_USAGE
    if isinstance(exc, StreamError):
        return EXIT_STREAM
    if isinstance(exc, APIConnectionError):
        return EXIT_CONNECTION
    if isinstance(exc, APIStatusError | APIError):
        return EXIT_API
    return EXIT_API


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        try:
            return _COMMANDS[args.command](args)
        finally:
            _flush_traces()
    except KeyboardInterrupt:
        sys.stdout.flush()
        sys.stderr.write("\ninterrupted\n")
        return EXIT_INTERRUPTED
    except WandbInferenceError as exc:
        sys.stdout.flush()
        message = " ".join(str(exc).split())
        sys.stderr.write(f"wandb-inference: error: {message}\n")
        return _exit_code(exc)
    except BrokenPipeError:
        # `wandb-inference chat ... | head`: the reader left; not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def entry_point() -> NoReturn:
    """The console script."""
    sys.exit(main())
