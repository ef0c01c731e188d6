"""Per-model constructors: ids, overrides, defaults, lifecycle warnings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from _helpers import API_KEY, BASE_URL, completion_body, json_response

import wandb_inference as wi
from wandb_inference._catalog._bound import RetiredModelWarning
from wandb_inference._catalog._table import CATALOG, ModelInfo

ROOT = Path(__file__).resolve().parents[1]


def _client(sent: list[httpx.Request], **options: Any) -> wi.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if request.url.path.endswith("/embeddings"):
            return json_response(200, {"model": "m", "data": [{"index": 0, "embedding": [1.0, 0.0]}]})
        return json_response(200, completion_body("<think>hmm</think> Answer."))

    http = httpx.Client(transport=httpx.MockTransport(handler))
    return wi.Client(API_KEY, base_url=BASE_URL, http_client=http, **options)


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


def _timeouts(connect: float | None, read: float | None, write: float | None, pool: float | None) -> dict[str, Any]:
    return {"connect": connect, "read": read, "write": write, "pool": pool}


def test_reasoning_models_raise_only_the_read_timeout() -> None:
    """A reasoning model keeps the client's timeout and raises only the read part (to
    30 minutes); a `timeout=` given to the constructor is used as it is."""
    sent: list[httpx.Request] = []
    # The default timeout (connect 10, read 600, write 60, pool 60); no total bound, which
    # would cut each attempt's timeouts to the time left.
    client = _client(sent, retry_policy=wi.RetryPolicy(total_timeout=None))
    client.qwen3_235b_thinking().ask("why?")
    assert sent[-1].extensions["timeout"] == _timeouts(10.0, 1800.0, 60.0, 60.0)
    client.llama_3_3_70b().ask("hi")  # not a reasoning model: the client's timeout
    assert sent[-1].extensions["timeout"] == _timeouts(10.0, 600.0, 60.0, 60.0)
    short = client.with_options(timeout=5)
    short.qwen3_235b_thinking().ask("why?")
    assert sent[-1].extensions["timeout"] == _timeouts(5.0, 1800.0, 5.0, 5.0)
    short.gpt_oss_20b().ask("why?")  # reasoning "always" and "on" alike
    assert sent[-1].extensions["timeout"] == _timeouts(5.0, 1800.0, 5.0, 5.0)
    short.glm_5().ask("why?")
    assert sent[-1].extensions["timeout"] == _timeouts(5.0, 1800.0, 5.0, 5.0)
    short.llama_3_3_70b().ask("hi")
    assert sent[-1].extensions["timeout"] == _timeouts(5.0, 5.0, 5.0, 5.0)
    # A client read already as long or longer (or unbounded) is not shortened.
    client.with_options(timeout=httpx.Timeout(5, read=3600)).qwen3_235b_thinking().ask("why?")
    assert sent[-1].extensions["timeout"] == _timeouts(5.0, 3600.0, 5.0, 5.0)
    client.with_options(timeout=httpx.Timeout(5, read=None)).qwen3_235b_thinking().ask("why?")
    assert sent[-1].extensions["timeout"] == _timeouts(5.0, None, 5.0, 5.0)
    # The constructor's own timeout wins, as given; a call's own wins over both.
    thinker = short.qwen3_235b_thinking(timeout=7)
    thinker.ask("why?")
    assert sent[-1].extensions["timeout"] == _timeouts(7.0, 7.0, 7.0, 7.0)
    thinker.create(messages=[{"role": "user", "content": "why?"}], timeout=httpx.Timeout(3, read=9))
    assert sent[-1].extensions["timeout"] == _timeouts(3.0, 9.0, 3.0, 3.0)
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
