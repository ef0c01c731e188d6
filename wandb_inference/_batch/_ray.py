"""`RayBatchProcessor`: the same batch requests as a Ray Dataset, across a cluster.

A callable class for `ray.data.Dataset.map_batches(RayBatchProcessor, concurrency=N,
fn_constructor_kwargs={...})`. Ray Data creates it once per actor; its async `__call__`
runs on the actor's own event loop, several batches at once (Ray's default is 4,
`RAY_DATA_DEFAULT_ASYNC_BATCH_UDF_MAX_CONCURRENCY`). Each actor keeps one `AsyncClient`
(created on that loop at the first batch), so all its batches share one connection pool
and one adaptive concurrency gate, and each batch runs through `client.batch.stream`:
many requests in flight, the client's retries and `Retry-After`, requeues of requests
that were certainly not processed. A row's failure becomes columns of that row; it never
fails the job. Ray itself is not imported here: this module only needs the batches Ray
hands over (dicts of columns, pandas or pyarrow).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, final

from wandb_inference._exceptions import WandbInferenceError

from ._request import ENDPOINT_URLS, BatchRequest
from ._result import BatchResult, error_code

if TYPE_CHECKING:
    from ._async import AsyncClientLike

__all__ = ["OUTPUT_COLUMNS", "RayBatchProcessor"]

OUTPUT_COLUMNS: Final = (
    "custom_id",
    "status_code",
    "request_id",
    "text",
    "response",
    "prompt_tokens",
    "completion_tokens",
    "error",
    "error_code",
    "latency_s",
)
# Columns that hold the request itself: not copied to the output.
_REQUEST_COLUMNS: Final = frozenset({"text", "line", "body", "method", "url"})
_LINE_COLUMNS: Final = ("line", "text")


def _columns(batch: Any) -> dict[str, Sequence[Any]]:
    """A batch as {column: values}: dicts of numpy arrays or lists, pandas, pyarrow."""
    if isinstance(batch, Mapping):
        return {str(k): v for k, v in batch.items()}
    to_pydict = getattr(batch, "to_pydict", None)  # pyarrow.Table
    if callable(to_pydict):
        return dict(to_pydict())
    to_dict = getattr(batch, "to_dict", None)  # pandas.DataFrame
    if callable(to_dict):
        return dict(to_dict("list"))
    raise TypeError(f"RayBatchProcessor takes a batch of columns (dict, pandas, pyarrow), not {type(batch).__name__}")


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python values (for JSON and the SDK's checks)."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and not isinstance(value, str | bytes):
        return tolist()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _raw_id(columns: Mapping[str, Sequence[Any]], i: int) -> str | None:
    """The row's `custom_id` when its request is unusable (for the error row)."""
    if "custom_id" in columns:
        return str(_plain(columns["custom_id"][i]))
    for name in _LINE_COLUMNS:
        if name in columns:
            try:
                value = json.loads(_plain(columns[name][i])).get("custom_id")
            except (ValueError, TypeError, AttributeError):
                return None
            return value if isinstance(value, str) else None
    return None


def _row_request(columns: Mapping[str, Sequence[Any]], i: int, model: str | None) -> BatchRequest | str:
    """Row `i` as a request, or why it is not one."""
    try:
        if "body" in columns:
            body = _plain(columns["body"][i])
            if isinstance(body, str | bytes):
                body = json.loads(body)
            custom_id = _plain(columns["custom_id"][i]) if "custom_id" in columns else str(i)
            url = _plain(columns["url"][i]) if "url" in columns else ENDPOINT_URLS["chat"]
            line = {"custom_id": str(custom_id), "method": "POST", "url": url, "body": body}
            return BatchRequest.from_line(line, line_number=i + 1, model=model)
        for name in _LINE_COLUMNS:
            if name in columns:
                return BatchRequest.from_line(_plain(columns[name][i]), line_number=i + 1, model=model)
    except (WandbInferenceError, ValueError, TypeError) as exc:
        return " ".join(str(exc).split())
    return "the batch has no request column: give `body` (and `custom_id`, `url`), or `text`/`line` (JSONL lines)"


def _text_of(response: Any) -> str | None:
    text = getattr(response, "text", None)
    return text if isinstance(text, str) else None


@final
class RayBatchProcessor:
    """A `Dataset.map_batches` callable class: rows in, responses, usage and errors out.

    ```python
    ds = ray.data.read_text("requests.jsonl")  # one OpenAI batch line per row ("text")
    out = ds.map_batches(
        wandb_inference.RayBatchProcessor,
        fn_constructor_kwargs={"project": "team/project", "max_concurrency": 16},
        concurrency=4,  # actors
        batch_size=64,
    )
    out.write_parquet("results/")
    ```

    Input rows: a `text` (or `line`) column of OpenAI batch lines (`ray.data.read_text`),
    or `custom_id` + `body` (a dict or JSON text) + optional `url` columns
    (`read_json` / `read_parquet` of your own table). Output rows: `custom_id`,
    `status_code`, `request_id`, `text` (the reply's text, chat only), `response` (the
    reply's body as JSON text), `prompt_tokens`, `completion_tokens`, `error` (message)
    and `error_code` (None on success), `latency_s`, plus the input's other columns.

    Args:
        api_key / project / base_url: as `AsyncClient` (default: the actor's environment).
        model: use this model for every row.
        max_concurrency: requests in flight per actor at most (the client's gate, shared
            by the actor's concurrent batches, lowers it on 429s).
        client_options: more `AsyncClient` keywords (`timeout`, `max_retries`, ...).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        project: str | None = None,
        base_url: str | None = None,
        model: str | None = None,
        max_concurrency: int = 32,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be >= 1, got {max_concurrency}")
        self._options: dict[str, Any] = {
            "api_key": api_key,
            "project": project,
            "base_url": base_url,
            "max_concurrency": max_concurrency,
            **(client_options or {}),
        }
        self._model = model
        self._max = max_concurrency
        self._client: AsyncClientLike | None = None

    def _get_client(self) -> Any:
        if self._client is None:
            # Built like user code builds one, through the public door (this subpackage
            # sits below the client shells and never imports them).
            import wandb_inference

            self._client = wandb_inference.AsyncClient(**self._options)  # on the actor's loop
        return self._client

    async def aclose(self) -> None:
        """Close the client (its connections). Ray ends actors with their process; call this
        when you use the processor yourself."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()  # type: ignore[attr-defined]

    async def __call__(self, batch: Any) -> Any:
        """Send a batch's rows; return the output columns (a `pyarrow.Table` with a fixed
        schema when pyarrow is installed, as it is with Ray: every block then has the same
        column types, even one whose `error` column is all empty; else a dict of lists)."""
        columns = await self.columns(batch)
        try:
            import pyarrow as pa
        except ImportError:  # pragma: no cover - Ray always brings pyarrow
            return columns
        types = {
            "custom_id": pa.string(),
            "status_code": pa.int64(),
            "request_id": pa.string(),
            "text": pa.string(),
            "response": pa.string(),
            "prompt_tokens": pa.int64(),
            "completion_tokens": pa.int64(),
            "error": pa.string(),
            "error_code": pa.string(),
            "latency_s": pa.float64(),
        }
        arrays = {name: pa.array(values, type=types.get(name)) for name, values in columns.items()}
        return pa.table(arrays)

    async def columns(self, batch: Any) -> dict[str, list[Any]]:
        """Send a batch's rows; return the output columns as a dict of lists."""
        columns = _columns(batch)
        size = len(next(iter(columns.values()))) if columns else 0
        requests: list[BatchRequest] = []
        problems: dict[int, str] = {}
        for i in range(size):
            made = _row_request(columns, i, self._model)
            if isinstance(made, str):
                problems[i] = made
            else:
                requests.append(made)
        results: dict[int, BatchResult] = {}
        stopped: WandbInferenceError | None = None
        client = self._get_client()
        async with client.batch.stream(requests, max_concurrency=self._max) as stream:
            try:
                async for result in stream:
                    results[(result.line or 0) - 1] = result
            except WandbInferenceError as exc:  # a job error: the rows not sent say so
                stopped = exc
        out: dict[str, list[Any]] = {name: [] for name in OUTPUT_COLUMNS}
        extra = [name for name in columns if name not in _REQUEST_COLUMNS and name not in out]
        for name in extra:
            out[name] = [_plain(value) for value in columns[name]]
        for i in range(size):
            self._row(out, i, columns, results.get(i), problems.get(i), stopped)
        return out

    @staticmethod
    def _row(
        out: dict[str, list[Any]],
        i: int,
        columns: Mapping[str, Sequence[Any]],
        result: BatchResult | None,
        problem: str | None,
        stopped: WandbInferenceError | None,
    ) -> None:
        custom_id = result.custom_id if result is not None else _raw_id(columns, i)
        response = result.response if result is not None else None
        usage = getattr(response, "usage", None)
        message: str | None
        code: str | None
        if result is not None and result.error is not None:
            error = result.error
            message, code = " ".join(str(error).split()), error_code(error)
        elif result is None:
            code = "invalid_request" if problem is not None else "not_sent"
            message = problem or f"not sent: the batch stopped after {type(stopped).__name__}: {stopped}"
        else:
            message = code = None
        out["custom_id"].append(custom_id)
        out["status_code"].append(
            response.http_response.status_code
            if response is not None and response.http_response is not None
            else getattr(result.error if result else None, "status_code", None)
        )
        out["request_id"].append(result.request_id if result is not None else None)
        out["text"].append(_text_of(response))
        out["response"].append(json.dumps(response.to_dict()) if response is not None else None)
        out["prompt_tokens"].append(getattr(usage, "prompt_tokens", None) if usage is not None else None)
        out["completion_tokens"].append(getattr(usage, "completion_tokens", None) if usage is not None else None)
        out["error"].append(message)
        out["error_code"].append(code)
        out["latency_s"].append(result.latency if result is not None else None)
