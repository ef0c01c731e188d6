"""Per-model constructors: ids, overrides, defaults, lifecycle warnings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from _helpers import API_KEY, BASE_URL, completion_body, json_response

import wandb_inference as wi
from wandb_inference._bound import REASONING_READ_TIMEOUT, RetiredModelWarning
from wandb_inference._catalog import CATALOG, ModelInfo

ROOT = Path(__file__).resolve().parents[1]


def _client(sent: list[httpx.Request]) -> wi.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path.endswith("/embeddings"):
            return json_response(200, {"model": "m", "data": [{"index": 0, "embedding": [1.0, 0.0]}]})
        return json_response(200, completion_body("<think>hmm</think> Answer."))

    return wi.Client(API_KEY, base_url=BASE_URL, http_client=httpx.Client(transport=httpx.MockTransport(handler)))


@pytest.mark.parametrize("info", [m for m in CATALOG if m.lifecycle.stage != "retired"], ids=lambda m: m.constructor)
def test_each_constructor_sends_its_catalog_id(info: ModelInfo) -> None:
    sent: list[httpx.Request] = []
    client = _client(sent)
    bound = getattr(client, info.constructor)()
    assert bound.model == info.id
    if info.capabilities.embeddings and not info.capabilities.chat:
        assert bound.embed("x") == [[1.0, 0.0]]
    else:
        assert bound.ask("hi") == "Answer."
    assert json.loads(sent[0].content)["model"] == info.id
    async_client = wi.AsyncClient(API_KEY, base_url=BASE_URL)
    assert getattr(async_client, info.constructor)().model == info.id
    client.close()


@pytest.mark.parametrize("info", [m for m in CATALOG if m.lifecycle.stage == "retired"], ids=lambda m: m.constructor)
def test_retired_constructors_warn_with_replacement(info: ModelInfo) -> None:
    client = wi.Client(API_KEY, base_url=BASE_URL)
    with pytest.warns(RetiredModelWarning, match=info.lifecycle.replacement or "") as record:
        bound = getattr(client, info.constructor)()
    assert bound.model == info.id
    assert record[0].filename == __file__  # points at the caller
    client.close()


def test_override_id_for_staging_and_lora() -> None:
    sent: list[httpx.Request] = []
    client = _client(sent)
    lora = "wandb-artifact:///team/proj/my-lora:v3"
    bound = client.llama_3_3_70b(model=lora)
    assert bound.model == lora
    bound.create(messages=[{"role": "user", "content": "hi"}])
    assert json.loads(sent[0].content)["model"] == lora
    with pytest.raises(wi.InvalidRequestError):
        client.llama_3_3_70b(model="")
    client.close()


def test_reasoning_models_get_a_long_read_timeout() -> None:
    sent: list[httpx.Request] = []
    client = _client(sent)
    reasoning = next(m for m in CATALOG if m.capabilities.reasoning == "always" and m.lifecycle.stage == "ga")
    getattr(client, reasoning.constructor)().ask("why?")
    assert sent[0].extensions["timeout"]["read"] == REASONING_READ_TIMEOUT
    client.llama_3_3_70b().ask("hi")
    assert sent[1].extensions["timeout"]["read"] == 600
    client.close()


def test_any_id_can_be_bound() -> None:
    sent: list[httpx.Request] = []
    client = _client(sent)
    assert client.chat_model("brand/new-model").ask("hi") == "Answer."
    assert client.embedding_model("brand/new-embedder").embed(["a"]) == [[1.0, 0.0]]
    client.close()


def test_constructors_file_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_constructors.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
