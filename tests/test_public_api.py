"""The public door: `__all__`, parity of the two clients, and a light import."""

from __future__ import annotations

import inspect
import subprocess
import sys

import wandb_inference
from wandb_inference._async_client import AsyncChat, AsyncEmbeddings, AsyncModels
from wandb_inference._client import Chat, Embeddings, Models

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


def _normalise(sig: inspect.Signature | str) -> object:
    if isinstance(sig, str):
        return sig
    params = []
    for p in sig.parameters.values():
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
    ]
    for async_cls, sync_cls in pairs:
        a = _public(async_cls)
        s = _public(sync_cls)
        a_names = {n.replace("aclose", "close") for n in a}
        assert a_names == set(s), (async_cls, a_names ^ set(s))
        for name, sig in a.items():
            other = s[name.replace("aclose", "close")]
            assert _normalise(sig) == _normalise(other), (async_cls.__name__, name)


def test_import_is_light() -> None:
    """`import wandb_inference` + a client load little beyond what httpx + a client do.

    (httpx itself imports click and rich when they are installed, for its CLI.)
    """
    code = (
        "import sys, httpx\n"
        "httpx.Client().close(); httpx.AsyncClient()\n"
        "base = set(sys.modules)\n"
        "import wandb_inference\n"
        "wandb_inference.Client(api_key='k').close()\n"
        "added = sorted(m for m in set(sys.modules) - base if not m.startswith('wandb_inference'))\n"
        "ours = sorted(m for m in sys.modules if m.startswith('wandb_inference'))\n"
        "print(' '.join(added)); print(' '.join(ours))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    added, ours = out.stdout.splitlines()
    heavy = ("wandb_inference_generated", "starlette", "uvicorn", "openai", "jsonschema", "yaml")
    assert not [m for m in added.split() if m.startswith(heavy)], added
    lazy = {
        "wandb_inference._catalog",
        "wandb_inference.server",
        "wandb_inference._cli",
        "wandb_inference._types",
        "wandb_inference._streaming",
        "wandb_inference._sse",
    }
    assert not lazy & set(ours.split()), ours
    # What the SDK adds over httpx is small and known (attrs, netrc, ...): pin it.
    assert added.split() == [], added
