"""The public door: `__all__`, parity of the two clients, and a light import."""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import Any

import pytest

import wandb_inference
from wandb_inference._async_resources import AsyncChat, AsyncEmbeddings, AsyncModels
from wandb_inference._batch._async import AsyncBatch, AsyncBatchResults
from wandb_inference._batch._sync import Batch, BatchResults
from wandb_inference._resources import Chat, Embeddings, Models

EXPECTED_ALL = sorted(wandb_inference.__all__)


def test_all_is_sorted_and_resolvable() -> None:
    assert wandb_inference.__all__ == EXPECTED_ALL
    for name in wandb_inference.__all__:
        assert getattr(wandb_inference, name) is not None


def _public(cls: type) -> dict[str, inspect.Signature | str]:
    out: dict[str, inspect.Signature | str] = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") and name not in ("__init__",):
            continue
        if isinstance(member, property):
            out[name] = "property"
        elif callable(member):
            out[name] = inspect.signature(member)
    return out


# aiohttp is asyncio only: choosing it is the one option the sync client has no twin of.
_ASYNC_ONLY = {"transport"}


def _normalise(sig: inspect.Signature | str) -> object:
    if isinstance(sig, str):
        return sig
    params = []
    for p in sig.parameters.values():
        if p.name in _ASYNC_ONLY:
            continue
        annotation = str(p.annotation)
        annotation = annotation.replace("Awaitable[None]", "None").replace("Async", "")
        params.append((p.name, p.kind, repr(p.default), annotation))
    ret = str(sig.return_annotation).replace("Async", "")
    return params, ret


def test_clients_have_the_same_surface() -> None:
    pairs = [
        (wandb_inference.AsyncClient, wandb_inference.Client),
        (AsyncChat, Chat),
        (AsyncModels, Models),
        (AsyncEmbeddings, Embeddings),
        (AsyncBatch, Batch),
        (AsyncBatchResults, BatchResults),
    ]
    for async_cls, sync_cls in pairs:
        a = _public(async_cls)
        s = _public(sync_cls)
        a_names = {n.replace("aclose", "close") for n in a}
        assert a_names == set(s), (async_cls, a_names ^ set(s))
        for name, sig in a.items():
            other = s[name.replace("aclose", "close")]
            assert _normalise(sig) == _normalise(other), (async_cls.__name__, name)
            assert isinstance(other, str) or not _ASYNC_ONLY & set(other.parameters)
    assert set(inspect.signature(wandb_inference.AsyncClient).parameters) >= _ASYNC_ONLY


# What constructing each client loads from the package; everything else waits for its
# first use (request building and error mapping load with the first call).
_CLIENT_MODULES = {
    "wandb_inference",
    "wandb_inference._catalog",  # the subpackages' __init__ files: a docstring each
    "wandb_inference._policy",
    "wandb_inference._catalog._binders",
    "wandb_inference._policy._concurrency",
    "wandb_inference._config",
    "wandb_inference._catalog._constructors",
    "wandb_inference._lazy",
    "wandb_inference._options",
    "wandb_inference._policy._retry",
    "wandb_inference._version",
    "wandb_inference._transports",  # the pool a client builds (its docstring, and the fix of
    "wandb_inference._transports._pool_fix",  # httpcore's pass: no imports beyond httpx's own)
}
# Never loaded by `import wandb_inference` and a client: if one of these is imported, the
# subprocess below fails with the import's traceback (a `None` entry in sys.modules makes
# any import of it raise, including ones already loaded by httpx's own CLI extras).
_BLOCKED = (
    "platform",
    "wandb_inference_generated",
    "wandb_inference.server",
    "wandb_inference._cli",
    "wandb_inference._streaming",
    "wandb_inference._types",
    "wandb_inference._cli._main",
    "wandb_inference._cli._demo",
    "wandb_inference._catalog._table",
    "wandb_inference._catalog._lookup",
    "wandb_inference._types._base",
    "wandb_inference._streaming._streams",
    "wandb_inference._streaming._sse",
    "wandb_inference._types._chunk",
    "wandb_inference._types._completion",
    "wandb_inference._types._embeddings",
    "wandb_inference._types._model_list",
    "wandb_inference._streaming._accumulate",
    "wandb_inference._helpers",
    "wandb_inference._prepare",
    "wandb_inference._replies",
    "wandb_inference._request",
    "wandb_inference._policy._errors_map",
    "wandb_inference._exceptions",
    "wandb_inference._catalog._bound",
    "wandb_inference._policy._aimd",
    "wandb_inference.tracing",
    "wandb_inference._tracing",
    "wandb_inference._transports._aiohttp",
    "wandb_inference._transports._decompress",
    "wandb_inference._policy._observe",
    "wandb_inference._batch",
    # Optional extras and heavy packages.
    "aiohttp",
    "httpx_aiohttp",
    "attrs",
    "starlette",
    "uvicorn",
    "openai",
    "httpx_sse",
    "matplotlib",
    "jsonschema",
    "yaml",
    "netrc",
    "opentelemetry",
    "weave",
    "rich",
    "ray",
    "anyio.streams.memory",
)


def _loaded_after(statement: str) -> tuple[list[str], list[str]]:
    """Run `statement` in a fresh interpreter after httpx and its clients are set up.

    Returns:
        The modules it added outside the package, and the package's modules loaded.
    """
    code = (
        "import sys, httpx\n"
        "httpx.Client().close(); httpx.AsyncClient()\n"
        "base = set(sys.modules)\n"
        f"for name in {_BLOCKED!r}: sys.modules[name] = None\n"
        f"{statement}\n"
        "loaded = [m for m, module in sys.modules.items() if module is not None]\n"
        "added = sorted(m for m in set(loaded) - base if not m.startswith('wandb_inference'))\n"
        "ours = sorted(m for m in loaded if m.startswith('wandb_inference'))\n"
        "print(' '.join(added)); print(' '.join(ours))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    added, ours = out.stdout.splitlines()
    return added.split(), ours.split()


def test_import_alone_loads_only_the_package() -> None:
    added, ours = _loaded_after("import wandb_inference")
    assert added == []
    assert ours == ["wandb_inference", "wandb_inference._version"]


def test_import_is_light() -> None:
    """`import wandb_inference` + a client load little beyond what httpx + a client do.

    Each client loads its own module, not the other's; nothing blocked above is imported.
    (httpx itself imports click and rich when they are installed, for its CLI.)
    """
    added, ours = _loaded_after("import wandb_inference\nwandb_inference.AsyncClient(api_key='k')")
    assert added == [], added
    assert set(ours) == _CLIENT_MODULES | {"wandb_inference._async_client", "wandb_inference._async_resources"}, ours
    added, ours = _loaded_after("import wandb_inference\nwandb_inference.Client(api_key='k').close()")
    assert added == [], added
    assert set(ours) == _CLIENT_MODULES | {
        "wandb_inference._client",
        "wandb_inference._resources",
        "wandb_inference._pool",
    }, ours


def test_the_aiohttp_transport_loads_only_when_chosen() -> None:
    """`transport="aiohttp"` loads aiohttp and the transport module, nothing else blocked."""
    pytest.importorskip("aiohttp")
    chosen = ("aiohttp", "wandb_inference._transports", "wandb_inference._transports._aiohttp")
    blocked = [m for m in _BLOCKED if m.startswith("wandb_inference") and m not in chosen]
    code = (
        "import sys\n"
        f"for name in {blocked!r}: sys.modules[name] = None\n"
        "import wandb_inference\n"
        "c = wandb_inference.AsyncClient(api_key='k', transport='aiohttp')\n"
        "print(type(c._http._transport).__module__, 'aiohttp' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["wandb_inference._transports._aiohttp", "True"]


def test_every_public_name_loads_lazily_from_its_module() -> None:
    lazy = wandb_inference._LAZY
    assert set(wandb_inference.__all__) == set(lazy) | {"__version__"}
    assert dir(wandb_inference) == wandb_inference.__all__
    code = "from wandb_inference import *\nimport wandb_inference\nprint(sorted(n for n in wandb_inference.__all__ if n not in globals()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_lazy_module_reads_through_once_loaded() -> None:
    from wandb_inference._lazy import lazy_module

    proxy: Any = lazy_module("wandb_inference._version")
    assert repr(proxy) == "<lazy module 'wandb_inference._version'>"
    assert proxy.__version__ == wandb_inference.__version__
    assert vars(proxy) is vars(sys.modules["wandb_inference._version"])
    with pytest.raises(AttributeError):
        _ = proxy.no_such_name


_CALL = """
import json, sys, httpx, wandb_inference
chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
completion = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}
def reply(request):
    if json.loads(request.content).get("stream"):
        body = f"data: {json.dumps(chunk)}\\n\\ndata: [DONE]\\n\\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})
    return httpx.Response(200, json=completion)
client = wandb_inference.Client(api_key="k", http_client=httpx.Client(transport=httpx.MockTransport(reply)))
args = dict(model="meta-llama/Llama-3.3-70B-Instruct", messages=[{"role": "user", "content": "hi"}])
if STREAM:
    with client.chat.create(stream=True, **args) as stream:
        assert [c.text for c in stream] == ["hi"]
else:
    assert client.chat.create(**args).text == "hi"
print(" ".join(sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("wandb_inference_generated.models."))))
print("wandb_inference._catalog._table" in sys.modules)
"""


@pytest.mark.parametrize(
    ("stream", "models"),
    [
        (True, "chat_completion_chunk chat_completion_chunk_choice chat_completion_delta"),
        (False, "chat_completion chat_completion_choice chat_completion_message"),
    ],
)
def test_a_call_loads_only_the_generated_models_its_reply_needs(stream: bool, models: str) -> None:
    """A stream's first call does not build the completion, embeddings or model-list models,
    nor a plain call the chunk models, nor either the models of parts its reply lacks (tool
    calls, logprobs): each costs about 0.5 ms of attrs class creation."""
    code = f"STREAM = {stream}\n" + _CALL
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    generated, catalog = out.stdout.splitlines()
    assert generated.split() == models.split()
    assert catalog == "False"  # a text chat to a model that serves chat needs no catalog


def test_calls_without_a_provider_never_import_opentelemetry() -> None:
    """With OpenTelemetry installed but not set up by the application, chat calls, streams
    and failed calls import none of it (the tracing hook is a dictionary lookup)."""
    import importlib.util

    assert importlib.util.find_spec("opentelemetry.trace") is not None  # installed: the test means something
    code = (
        "import sys\n"
        + _CALL.split("if STREAM:")[0]
        + "assert client.chat.create(**args).text == 'hi'\n"
        + "with client.chat.create(stream=True, **args) as stream:\n    assert [c.text for c in stream] == ['hi']\n"
        + "try:\n    client.chat.create(model='m', messages=[{'role': 'user', 'content': 'x'}], seed=1.5)\n"
        + "except wandb_inference.InvalidRequestError: pass\n"
        + "loaded = [m for m in sys.modules if m.startswith('opentelemetry') or m.startswith('wandb_inference._tracing._op')]\n"
        + "print(loaded, 'wandb_inference._tracing._hooks' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] True"
