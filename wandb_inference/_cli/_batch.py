"""`wandb-inference batch`: run an OpenAI Batch JSONL file, resumably.

Runs on `AsyncClient` (one thread, many requests in flight). Ctrl-C once stops sending
and lets the requests in flight finish and be written; twice cancels them. Either way
the files stay consistent and the summary says how to resume (the same command).
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from wandb_inference._exceptions import BatchFileError, InvalidRequestError, WandbInferenceError

if TYPE_CHECKING:
    from wandb_inference._batch._job import BatchCheck
    from wandb_inference._batch._summary import BatchSummary

__all__ = ["EXIT_LINES_FAILED", "add_batch_parser", "cmd_batch"]

EXIT_LINES_FAILED: Final = 6
BATCH_EXIT_CODES: Final = {
    0: "every line has a result and none failed (or nothing was left to send)",
    1: "a job error stopped it early (quota, bad key or project): fix it, run the same command again",
    2: "invalid or duplicate input lines (listed; nothing was sent), or invalid arguments",
    3: "configuration problem, or a file that cannot be read, written or locked",
    4: "the service could not be reached: stopped early",
    EXIT_LINES_FAILED: "finished, but some lines failed: they are in the errors file",
    130: "interrupted (Ctrl-C): run the same command again to resume",
}


def add_batch_parser(sub: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """The `batch` subcommand's arguments."""
    epilog = "exit codes:\n" + "\n".join(f"  {code:<4} {what}" for code, what in BATCH_EXIT_CODES.items())
    p = sub.add_parser(
        "batch",
        parents=list(parents),
        help="run an OpenAI Batch JSONL file (resumable: run it again to continue)",
        description=(
            "Send every line of an OpenAI Batch input file and append the results to OUTPUT as "
            "they finish (failures to the errors file). Running the same command again sends "
            "only the lines with no result yet."
        ),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="the input file: one {custom_id, method, url, body} per line")
    p.add_argument("-o", "--output", required=True, help="results file (OpenAI Batch output lines, appended)")
    p.add_argument("--errors", help="failures file (default: OUTPUT with .errors before its extension)")
    p.add_argument("--max-concurrency", type=int, default=32, help="requests in flight at most (default 32)")
    p.add_argument("--model", help="use this model for every line")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress and no summary (errors still print)")
    p.add_argument("--dry-run", action="store_true", help="check the input and count what would be sent; send nothing")
    p.add_argument("--skip-invalid", action="store_true", help="leave invalid or duplicate lines out and go on")
    p.add_argument(
        "--retry-errors", action="store_true", help="send the lines of the errors file again (moved to *.retried)"
    )


def _resume_command(args: argparse.Namespace) -> str:
    """The command to run again (the API key left out: it comes from the environment)."""
    parts = ["wandb-inference", "batch", args.input, "--output", args.output]
    for flag, value in (
        ("--errors", args.errors),
        ("--model", args.model),
        ("--project", args.project),
        ("--base-url", args.base_url),
        ("--max-concurrency", args.max_concurrency),
    ):
        if value is not None:
            parts += [flag, str(value)]
    if args.skip_invalid:
        parts.append("--skip-invalid")
    if args.api_key:
        parts += ["--api-key", "..."]
    return shlex.join(parts)


def _print_check(check: BatchCheck, args: argparse.Namespace) -> None:
    out = sys.stdout
    out.write(f"{args.input}: {check.lines:,} lines; {check.to_send:,} to send, {check.done:,} already done\n")
    for url, count in sorted(check.endpoints.items()):
        out.write(f"  {url}: {count:,}\n")
    for model, count in sorted(check.models.items(), key=lambda kv: -kv[1]):
        out.write(f"  model {model}: {count:,}\n")
    for path, size in check.repair.items():
        out.write(f"  {path}: a torn last line ({size} bytes) would be cut off\n")
    if check.foreign_done:
        out.write(f"  {check.foreign_done:,} results are for custom_ids the input does not have\n")
    if check.problem_count:
        out.write(f"{check.problem_count:,} invalid or duplicate line(s):\n")
        for line, custom_id, message in check.problems[:50]:
            shown = f" ({custom_id!r})" if custom_id else ""
            out.write(f"  line {line}{shown}: {message}\n")
        if check.problem_count > 50:
            out.write(f"  ... and {check.problem_count - 50:,} more\n")


async def _run(args: argparse.Namespace) -> BatchSummary:
    from wandb_inference._async_client import AsyncClient
    from wandb_inference._batch._job import BatchControl

    control = BatchControl()
    loop = asyncio.get_running_loop()
    presses = 0

    def interrupted() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            control.stop()
            sys.stderr.write(
                f"\nstopping: no new requests; waiting for the {control.in_flight} in flight "
                "(Ctrl-C again to cancel them)\n"
            )
        else:
            control.cancel()
            sys.stderr.write("\ncancelling the requests in flight (a re-run sends them again)\n")
        sys.stderr.flush()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, interrupted)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - Windows, threads
            pass
    try:
        async with AsyncClient(
            api_key=args.api_key,
            project=args.project,
            base_url=args.base_url,
            timeout=args.timeout,
            max_retries=args.max_retries,
            max_concurrency=args.max_concurrency,
        ) as client:
            return await client.batch.run(
                args.input,
                args.output,
                errors=args.errors,
                model=args.model,
                max_concurrency=args.max_concurrency,
                skip_invalid=args.skip_invalid,
                retry_errors=args.retry_errors,
                progress=not args.quiet,
                control=control,
            )
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def cmd_batch(args: argparse.Namespace, exit_code: Callable[[WandbInferenceError], int]) -> int:
    """Run (or with `--dry-run` check) a batch file; the exit code (see `BATCH_EXIT_CODES`).

    Args:
        args: the parsed command line.
        exit_code: the CLI's exit code for an error (for a job error that stopped the run).
    """
    from wandb_inference._batch._job import check_files, default_errors_path
    from wandb_inference._batch._progress import format_summary

    if args.max_concurrency < 1:
        raise InvalidRequestError(f"--max-concurrency must be >= 1, got {args.max_concurrency}")
    try:
        if args.dry_run:
            check = check_files(args.input, args.output, args.errors, model=args.model, retry_errors=args.retry_errors)
            _print_check(check, args)
            return 0 if check.ok else 2
        summary = asyncio.run(_run(args))
    except BatchFileError as exc:
        sys.stdout.flush()
        sys.stderr.write(f"wandb-inference: error: {exc}\n")
        return 3 if not exc.problems else 2
    except OSError as exc:
        sys.stderr.write(f"wandb-inference: error: {exc.filename or ''}: {exc.strerror or exc}\n")
        return 3
    errors = args.errors or str(default_errors_path(Path(args.output)))
    err = sys.stderr
    if not args.quiet:
        for note in summary.notes:
            err.write(f"note: {note}\n")
        err.write(format_summary(summary, output=args.output, errors=errors) + "\n")
    if summary.stopped == "error" and summary.error is not None:
        message = " ".join(str(summary.error).split())
        err.write(f"wandb-inference: error: stopped early: {message}\n")
        err.write(f"After fixing it, run the same command to send the rest: {_resume_command(args)}\n")
        return exit_code(summary.error)
    if summary.stopped is not None:
        err.write(
            f"interrupted: {summary.not_sent:,} requests not sent. Run the same command to resume "
            f"(results already written are kept and not sent again): {_resume_command(args)}\n"
        )
        return 130
    if summary.failed:
        if args.quiet:
            err.write(f"wandb-inference: {summary.failed:,} lines failed: see {errors}\n")
        return EXIT_LINES_FAILED
    return 0
