"""The OpenAPI document: valid, complete, and its generated models round-trip real bodies."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _helpers import load_spec, written
from openapi_spec_validator import validate
from wandb_inference_generated.models.chat_completion import ChatCompletion
from wandb_inference_generated.models.chat_completion_chunk import ChatCompletionChunk
from wandb_inference_generated.models.chat_completion_request import ChatCompletionRequest
from wandb_inference_generated.models.embedding_request import EmbeddingRequest
from wandb_inference_generated.models.embedding_response import EmbeddingResponse
from wandb_inference_generated.models.error_response import ErrorResponse
from wandb_inference_generated.models.model_list import ModelList

ROOT = Path(__file__).resolve().parents[1]
SPEC_PATH = ROOT / "openapi" / "openapi.yaml"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec()


def test_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises on any violation


def test_every_documented_status(spec: dict[str, Any]) -> None:
    chat = spec["paths"]["/chat/completions"]["post"]["responses"]
    assert set(chat) == {"200", "400", "401", "402", "403", "404", "422", "429", "500", "503"}
    assert list(chat["200"]["content"]) == ["application/json", "text/event-stream"]
    responses = spec["components"]["responses"]
    assert "Retry-After" in responses["TooManyRequests"]["headers"]
    assert "Retry-After" in responses["ServiceUnavailable"]["headers"]


def test_every_service_parameter_is_in_the_request(spec: dict[str, Any]) -> None:
    props = spec["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    for name in (
        "messages", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "presence_penalty",
        "frequency_penalty", "logit_bias", "response_format", "tools", "tool_choice", "functions",
        "function_call", "stream", "stream_options", "chat_template_kwargs", "cache_salt",
        "reasoning_effort",
    ):  # fmt: skip
        assert name in props, name


def test_server_extensible_values_are_open_strings(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    for schema, field in (
        ("ChatCompletionChoice", "finish_reason"),
        ("ChatCompletionChunkChoice", "finish_reason"),
        ("ChatCompletionMessage", "role"),
        ("ChatCompletionDelta", "role"),
    ):
        prop = schemas[schema]["properties"][field]
        assert "enum" not in prop and "const" not in prop, (schema, field)


def test_no_defaults_on_request_properties(spec: dict[str, Any]) -> None:
    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            if "default" in node and "const" not in node:
                raise AssertionError(f"default without const at {path}")
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(spec["components"]["schemas"], "#/components/schemas")


CHAT = {
    "id": "chatcmpl-abc",
    "object": "chat.completion",
    "created": 1_760_000_000,
    "model": "Qwen/Qwen3-235B-A22B-Thinking-2507",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Paris.",
                "reasoning": "The user asks for the capital of France.",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q":"x"}'}}
                ],
                "vendor_field": {"kept": True},
            },
            "finish_reason": "stop",
            "logprobs": None,
            "stop_reason": None,
        }
    ],
    "usage": {
        "prompt_tokens": 12,
        "completion_tokens": 30,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 25},
    },
    "system_fingerprint": None,
    "kv_transfer_params": None,
    "prompt_logprobs": None,
}

CHUNK_TOOLS = {
    "id": "chatcmpl-abc",
    "object": "chat.completion.chunk",
    "created": 1_760_000_000,
    "model": "openai/gpt-oss-120b",
    "choices": [
        {
            "index": 0,
            "delta": {
                "reasoning": "Need the weather tool.",
                "reasoning_content": "Need the weather tool.",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "weather", "arguments": '{"ci'},
                    },
                    {"index": 1, "function": {"arguments": 'ty":'}},
                ],
            },
            "finish_reason": None,
            "token_ids": None,
        }
    ],
}

CHUNK_USAGE = {
    "id": "chatcmpl-abc",
    "object": "chat.completion.chunk",
    "created": 1_760_000_000,
    "model": "m",
    "choices": [],
    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
}

EMBEDDINGS = {
    "object": "list",
    "model": "BAAI/bge-m3",
    "data": [
        {"object": "embedding", "index": 0, "embedding": [0.1, -0.2, 0.3]},
        {"object": "embedding", "index": 1, "embedding": "zczMPc3MTL6amZk+"},
    ],
    "usage": {"prompt_tokens": 4, "total_tokens": 4},
    "id": "embd-1",
}


@pytest.mark.parametrize(
    ("cls", "body"),
    [
        (ChatCompletion, CHAT),
        (ChatCompletionChunk, CHUNK_TOOLS),
        (ChatCompletionChunk, CHUNK_USAGE),
        (EmbeddingResponse, EMBEDDINGS),
        (
            ModelList,
            {
                "object": "list",
                "data": [
                    {
                        "id": "a",
                        "object": "model",
                        "created": 0,
                        "owned_by": "wandb",
                        "root": "a",
                        "max_model_len": 131072,
                    }
                ],
            },
        ),
        (
            ErrorResponse,
            {"error": {"message": "bad", "type": "invalid_request_error", "code": 400, "param": None, "extra": 1}},
        ),
    ],
)
def test_generated_models_round_trip_keeping_unknown_fields(cls: Any, body: dict[str, Any]) -> None:
    parsed = cls.from_dict(body)
    # Unknown fields as sent (nulls too); a documented optional field that is null is left
    # out, as if absent: both read as None.
    assert parsed.to_dict() == written(body, cls.__name__)
    assert cls.from_dict(parsed.to_dict()) == parsed


def test_parsed_values_are_typed() -> None:
    chunk = ChatCompletionChunk.from_dict(CHUNK_TOOLS)
    delta: Any = chunk.choices[0].delta
    assert delta.reasoning == "Need the weather tool."
    assert delta.tool_calls[0].function.name == "weather"
    assert delta.tool_calls[1].index == 1
    completion: Any = ChatCompletion.from_dict(CHAT)
    assert completion.usage.completion_tokens_details.reasoning_tokens == 25
    assert completion.choices[0].message["vendor_field"] == {"kept": True}


def test_request_models_round_trip() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA==", "detail": "low"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
            },
            {"role": "tool", "content": "42", "tool_call_id": "c"},
        ],
        "stop": ["x", "y"],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "s", "schema": {"type": "object"}, "strict": True},
        },
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "stream": True,
        "stream_options": {"include_usage": True},
        "chat_template_kwargs": {"enable_thinking": False},
        "reasoning_effort": "high",
        "logit_bias": {"50256": -100},
    }
    sent = ChatCompletionRequest.from_dict(body).to_dict()
    assert sent["messages"][2] == {k: v for k, v in body["messages"][2].items() if k != "content"}  # null: left out
    assert sent == {**body, "messages": [*body["messages"][:2], sent["messages"][2], body["messages"][3]]}
    emb = {"model": "m", "input": ["a", "b"], "encoding_format": "base64", "dimensions": 8}
    assert EmbeddingRequest.from_dict(emb).to_dict() == emb


@pytest.fixture(scope="module")
def regen_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openapi-python-client", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("openapi-python-client is not installed in this environment")
    dest = tmp_path_factory.mktemp("regen")
    for part in ("openapi", "scripts", "generated", "wandb_inference/_spec"):
        shutil.copytree(ROOT / part, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")  # ruff's settings for the facade files
    return dest


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "VIRTUAL_ENV": str(Path(sys.executable).parents[1]),
    }
    return subprocess.run(
        ["bash", "scripts/regen.sh", "--check"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def test_regen_check_detects_hand_edits_and_spec_changes(regen_copy: Path) -> None:
    assert _check(regen_copy).returncode == 0
    target = regen_copy / "generated" / "wandb_inference_generated" / "models" / "usage.py"
    original = target.read_text()
    target.write_text(original.replace("prompt_tokens", "prompt_tokenz", 1))
    result = _check(regen_copy)
    assert result.returncode != 0 and "stale or was edited" in result.stderr
    target.write_text(original)
    params = regen_copy / "wandb_inference" / "_spec" / "_params.py"
    original = params.read_text()
    params.write_text(original.replace("max_tokens: int | None", "max_tokens: int", 1))
    result = _check(regen_copy)
    assert result.returncode != 0 and "_spec/_params.py is stale or was edited" in result.stderr
    params.write_text(original)
    assert _check(regen_copy).returncode == 0
    spec = regen_copy / "openapi" / "openapi.yaml"
    spec.write_text(spec.read_text().replace("        cache_salt:\n", "        cache_salt_v2:\n"))
    assert _check(regen_copy).returncode != 0


def test_generated_packages_import_models_on_first_use() -> None:
    # The custom templates (openapi/templates/) make the package inits lazy: a stream's
    # first chunk needs a handful of models, not all of them (each costs ~1 ms to build).
    code = (
        "import sys\n"
        "import wandb_inference_generated.models.usage as u\n"
        "import wandb_inference_generated.models as m\n"
        "loaded = sorted(n for n in sys.modules if n.startswith('wandb_inference_generated.'))\n"
        "print(','.join(loaded))\n"
        "assert m.ChatCompletion.__name__ == 'ChatCompletion'\n"
        "assert 'ChatCompletion' in dir(m) and set(m.__all__) <= set(dir(m))\n"
        "assert all(getattr(m, n) is not None for n in m.__all__)\n"
        "import wandb_inference_generated as g\n"
        "assert g.Client.__name__ == 'Client' and g.AuthenticatedClient.__name__ == 'AuthenticatedClient'\n"
        "try:\n"
        "    m.NoSuchModel\n"
        "except AttributeError as exc:\n"
        "    assert 'NoSuchModel' in str(exc)\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().split(",") == [
        "wandb_inference_generated.models",
        "wandb_inference_generated.models.usage",
        "wandb_inference_generated.types",
    ]
