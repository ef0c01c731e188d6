"""The model catalog: invariants, the facts SERVICE.md states, lookups, listing join/diff."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import keyword
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import httpx
import pytest

import wandb_inference as wi
from wandb_inference._catalog._constructors import SyncConstructors
from wandb_inference._catalog._lookup import (
    CatalogDiff,
    all_models,
    by_constructor,
    diff_listing,
    get_model_info,
    join_listing,
    staging_id,
)
from wandb_inference._catalog._table import CATALOG, ModelInfo

ROOT = Path(__file__).resolve().parents[1]

# Facts SERVICE.md states (ids, context in thousands as it writes them, vision, retirement).
SERVICE_CONTEXT_K = {
    "meta-llama/Llama-3.3-70B-Instruct": 128,
    "Qwen/Qwen3-235B-A22B-Instruct-2507": 262,
    "deepseek-ai/DeepSeek-V3.1": 161,
    "deepseek-ai/DeepSeek-V4-Flash-0731": 262,
    "deepseek-ai/DeepSeek-V4-Pro-0813": 1049,
    "deepseek-ai/DeepSeek-V4.1-Flash": 1049,
    "google/gemma-4-31B-it": 262,
    "google/gemma-4-26B-A4B-it": 262,
    "meta-llama/Llama-3.1-8B-Instruct": 128,
    "meta-llama/Llama-3.1-70B-Instruct": 128,
    "moonshotai/Kimi-K2.5": 262,
    "openai/gpt-oss-120b": 131,
    "openai/gpt-oss-20b": 131,
    "Qwen/Qwen3-235B-A22B-Thinking-2507": 262,
    "Qwen/Qwen3-Coder-480B-A35B-Instruct": 262,
    "Qwen/Qwen3-30B-A3B-Instruct-2507": 262,
    "OpenPipe/Qwen3-14B-Instruct": 32.8,
    "zai-org/GLM-5-FP8": 200,
    "ibm-granite/granite-4.1-8b": 131,
    "MiniMaxAI/MiniMax-M2.5": 197,
}
SERVICE_RETIRED = {
    "deepseek-ai/DeepSeek-R1-0528": dt.date(2026, 3, 4),
    "meta-llama/Llama-4-Scout-17B-16E-Instruct": dt.date(2026, 4, 21),
    "microsoft/Phi-4-mini-instruct": dt.date(2026, 7, 20),
}
SERVICE_VISION = {
    "deepseek-ai/DeepSeek-V4.1-Flash",
    "google/gemma-4-31B-it",
    "google/gemma-4-26B-A4B-it",
    "moonshotai/Kimi-K2.5",
}
REQUIRED_CONSTRUCTORS = {
    "deepseek_r1": "deepseek-ai/DeepSeek-R1-0528",
    "qwq_32b": "Qwen/QwQ-32B",
    "llama_3_3_70b": "meta-llama/Llama-3.3-70B-Instruct",
    "bge_m3": "BAAI/bge-m3",
    "mistral_small_3_1": "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
    "llama_4_scout": "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "qwen_2_5_vl_7b": "Qwen/Qwen2.5-VL-7B-Instruct",
    "phi_4_mini": "microsoft/Phi-4-mini-instruct",
    "llama_4_maverick": "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
    "granite_3_3_8b": "ibm-granite/granite-3.3-8b-instruct",
}
CURRENT_CONSTRUCTORS = {
    "qwen3_235b_instruct": "Qwen/Qwen3-235B-A22B-Instruct-2507",
    "qwen3_235b_thinking": "Qwen/Qwen3-235B-A22B-Thinking-2507",
    "qwen3_coder_480b": "Qwen/Qwen3-Coder-480B-A35B-Instruct",
    "qwen3_30b_a3b": "Qwen/Qwen3-30B-A3B-Instruct-2507",
    "qwen3_14b": "OpenPipe/Qwen3-14B-Instruct",
    "deepseek_v3_1": "deepseek-ai/DeepSeek-V3.1",
    "deepseek_v4_flash": "deepseek-ai/DeepSeek-V4-Flash-0731",
    "deepseek_v4_pro": "deepseek-ai/DeepSeek-V4-Pro-0813",
    "deepseek_v4_1_flash": "deepseek-ai/DeepSeek-V4.1-Flash",
    "gemma_4_31b": "google/gemma-4-31B-it",
    "gemma_4_26b": "google/gemma-4-26B-A4B-it",
    "llama_3_1_8b": "meta-llama/Llama-3.1-8B-Instruct",
    "llama_3_1_70b": "meta-llama/Llama-3.1-70B-Instruct",
    "kimi_k2_5": "moonshotai/Kimi-K2.5",
    "gpt_oss_120b": "openai/gpt-oss-120b",
    "gpt_oss_20b": "openai/gpt-oss-20b",
    "glm_5": "zai-org/GLM-5-FP8",
    "granite_4_1_8b": "ibm-granite/granite-4.1-8b",
    "minimax_m2_5": "MiniMaxAI/MiniMax-M2.5",
}
REASONING = {
    "deepseek-ai/DeepSeek-R1-0528": "always",
    "openai/gpt-oss-120b": "always",
    "openai/gpt-oss-20b": "always",
    "google/gemma-4-31B-it": "on",
    "Qwen/Qwen3-235B-A22B-Thinking-2507": "always",
    "moonshotai/Kimi-K2.5": "on",
    "Qwen/QwQ-32B": "always",
    "Qwen/Qwen3-235B-A22B-Instruct-2507": "off",
    "meta-llama/Llama-3.3-70B-Instruct": "off",
}
ORIGINAL_VISION = {
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "Qwen/Qwen2.5-VL-7B-Instruct",
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
}


def _row(model_id: str) -> ModelInfo:
    info = get_model_info(model_id)
    assert info is not None, model_id
    return info


# --------------------------------------------------------------------------- invariants


def test_ids_and_constructors_are_unique() -> None:
    ids = [m.id for m in CATALOG]
    constructors = [m.constructor for m in CATALOG]
    assert len(ids) == len(set(ids))
    assert len({i.casefold() for i in ids}) == len(ids)  # case-insensitive lookup stays unambiguous
    assert len(constructors) == len(set(constructors))


def test_constructors_are_lowercase_identifiers_free_on_the_clients() -> None:
    own = set(vars(SyncConstructors))  # the generated methods (possibly of an older catalog)
    taken = (set(dir(wi.Client)) | set(dir(wi.AsyncClient))) - own
    for info in CATALOG:
        name = info.constructor
        assert name.isidentifier() and not keyword.iskeyword(name), name
        assert name == name.lower() and not name.startswith("_"), name
        assert name not in taken, f"{name} would shadow a client attribute"


@pytest.mark.parametrize("table", [REQUIRED_CONSTRUCTORS, CURRENT_CONSTRUCTORS])
def test_named_constructors_exist_for_their_ids(table: dict[str, str]) -> None:
    for constructor, model_id in table.items():
        info = by_constructor(constructor)
        assert info is not None, constructor
        assert info.id == model_id


def test_catalog_is_exactly_the_original_and_service_models() -> None:
    expected = set(REQUIRED_CONSTRUCTORS.values()) | set(CURRENT_CONSTRUCTORS.values())
    assert {m.id for m in CATALOG} == expected
    assert len(CATALOG) == 29


def test_every_service_md_id_is_present_with_its_context_window() -> None:
    for model_id, thousands in SERVICE_CONTEXT_K.items():
        info = _row(model_id)
        assert info.id == model_id
        # SERVICE.md rounds (262k = 262_144; 32.8k = 32_768): the catalog must agree.
        assert abs(info.context_window / 1000 - thousands) < 0.5, (model_id, info.context_window)


def test_retired_rows_have_dates_and_served_replacements() -> None:
    retired = [m for m in CATALOG if m.lifecycle.stage == "retired"]
    assert {m.id: m.lifecycle.retired_on for m in retired} == SERVICE_RETIRED  # no invented dates
    for info in retired:
        replacement = info.lifecycle.replacement
        assert replacement is not None and replacement != info.id
        target = get_model_info(replacement)
        assert target is not None and target.id == replacement, replacement
        assert target.lifecycle.stage == "ga", replacement
        if info.capabilities.vision:
            assert target.capabilities.vision, "a vision model's replacement must see images"


def test_only_retired_rows_carry_a_retirement_date() -> None:
    for info in CATALOG:
        if info.lifecycle.stage != "retired":
            assert info.lifecycle.retired_on is None, info.id
        if info.lifecycle.replacement is not None:
            assert get_model_info(info.lifecycle.replacement) is not None


def test_llama_3_3_is_ga_with_128k() -> None:
    info = _row("meta-llama/Llama-3.3-70B-Instruct")
    assert info.lifecycle.stage == "ga"
    assert info.context_window == 128_000


def test_embedding_rows_have_dimensions_and_no_chat() -> None:
    embedders = [m for m in CATALOG if m.capabilities.embeddings]
    assert [m.id for m in embedders] == ["BAAI/bge-m3"]
    for info in CATALOG:
        if info.capabilities.embeddings:
            assert isinstance(info.embedding_dimensions, int) and info.embedding_dimensions > 0
            assert not info.capabilities.chat
            assert not info.capabilities.tools and info.capabilities.reasoning == "off"
        else:
            assert info.embedding_dimensions is None
            assert info.capabilities.chat
    assert _row("BAAI/bge-m3").embedding_dimensions == 1024


def test_bge_m3_is_deprecated_not_retired() -> None:
    # W&B's current catalog lists no embedding model, but no retirement date is known.
    info = _row("BAAI/bge-m3")
    assert info.lifecycle.stage == "deprecated"
    assert info.lifecycle.retired_on is None
    assert "no embedding model" in info.notes


def test_reasoning_modes() -> None:
    for model_id, mode in REASONING.items():
        assert _row(model_id).capabilities.reasoning == mode, model_id


def test_vision_models() -> None:
    vision = {m.id for m in CATALOG if m.capabilities.vision}
    assert vision >= SERVICE_VISION | ORIGINAL_VISION
    assert not _row("meta-llama/Llama-3.3-70B-Instruct").capabilities.vision
    assert not _row("openai/gpt-oss-120b").capabilities.vision


def test_uncertain_rows_say_so() -> None:
    # Rows SERVICE.md does not describe are filled from best knowledge: they need notes.
    documented = set(SERVICE_CONTEXT_K) | set(SERVICE_RETIRED)
    for info in CATALOG:
        if info.id not in documented:
            assert info.notes, f"{info.id}: facts not in SERVICE.md need a note"
    for model_id in ("Qwen/QwQ-32B", "ibm-granite/granite-3.3-8b-instruct", "Qwen/Qwen2.5-VL-7B-Instruct"):
        assert "unverified" in _row(model_id).notes
        assert _row(model_id).lifecycle.stage == "ga"


def test_rows_are_complete() -> None:
    for info in CATALOG:
        assert info.name and info.family and info.family == info.family.lower()
        assert info.context_window >= 8_192
        assert info.in_catalog
        assert info.notes == info.notes.strip()


# --------------------------------------------------------------------------- lookups


def test_get_model_info_exact_staging_and_case_insensitive() -> None:
    for info in CATALOG:
        assert get_model_info(info.id) is info
        assert get_model_info(staging_id(info.id)) is info
        assert get_model_info(info.id.upper()) is info
        assert get_model_info(info.id.lower()) is info
        assert get_model_info(staging_id(info.id).lower()) is info
    assert staging_id("meta-llama/Llama-3.3-70B-Instruct") == "cw_meta-llama_Llama-3.3-70B-Instruct"
    assert get_model_info("cw_meta-llama_Llama-3.3-70B-Instruct") is by_constructor("llama_3_3_70b")


@pytest.mark.parametrize(
    "model_id",
    [
        "brand/new-model",
        "wandb-artifact:///team/project/my-lora:v3",
        "",
        "meta-llama/Llama-3.3-70B",
        "cw_meta-llama/Llama-3.3-70B-Instruct",
        "meta-llama_Llama-3.3-70B-Instruct",
    ],
)
def test_unknown_ids_give_none(model_id: str) -> None:
    assert get_model_info(model_id) is None


def test_by_constructor() -> None:
    for info in CATALOG:
        assert by_constructor(info.constructor) is info
    assert by_constructor("nope") is None
    assert by_constructor("LLAMA_3_3_70B") is None  # exact, like the attribute it names


def test_all_models() -> None:
    assert all_models() == CATALOG
    assert all_models(include_retired=True) == CATALOG
    served = all_models(include_retired=False)
    assert [m.id for m in served] == [m.id for m in CATALOG if m.id not in SERVICE_RETIRED]
    assert "BAAI/bge-m3" in {m.id for m in served}  # deprecated is not retired


# --------------------------------------------------------------------------- join and diff


def test_join_listing_keeps_order_and_fills_unknown_rows() -> None:
    listed = [
        "openai/gpt-oss-20b",
        "brand/new-model",
        "cw_meta-llama_Llama-3.3-70B-Instruct",
        "QWEN/QWQ-32B",
        "openai/gpt-oss-20b",
    ]
    rows = join_listing(listed)
    assert [r.id for r in rows] == listed
    assert rows[0] is _row("openai/gpt-oss-20b")
    unknown = rows[1]
    assert unknown == ModelInfo.unknown("brand/new-model")
    assert not unknown.in_catalog and unknown.name == "brand/new-model"
    assert unknown.context_window == 0 and unknown.constructor == "" and unknown.family == "unknown"
    assert unknown.lifecycle.stage == "ga" and unknown.capabilities.chat and unknown.notes
    # Known under another spelling: the catalog's facts, the listed id.
    assert rows[2] == attrs.evolve(_row("meta-llama/Llama-3.3-70B-Instruct"), id=listed[2])
    assert rows[3].constructor == "qwq_32b" and rows[3].id == "QWEN/QWQ-32B"
    assert join_listing([]) == []
    assert join_listing(iter(["openai/gpt-oss-120b"]))[0].constructor == "gpt_oss_120b"


def test_join_and_diff_refuse_a_single_string_or_non_strings() -> None:
    for fn in (join_listing, diff_listing):
        with pytest.raises(wi.InvalidRequestError, match="list of model ids"):
            fn("openai/gpt-oss-20b")
        with pytest.raises(wi.InvalidRequestError, match="must be strings"):
            fn([{"id": "openai/gpt-oss-20b"}])  # type: ignore[list-item]


def _ga_ids() -> list[str]:
    return [m.id for m in CATALOG if m.lifecycle.stage == "ga"]


def test_diff_of_a_matching_listing_is_empty() -> None:
    diff = diff_listing(_ga_ids())
    assert diff == CatalogDiff()
    assert not diff.has_differences and not diff.empty_listing
    # Deprecated models may or may not be listed.
    assert not diff_listing([*_ga_ids(), "BAAI/bge-m3"]).has_differences
    # A staging host's ids match too.
    assert not diff_listing([staging_id(i) for i in _ga_ids()]).has_differences


def test_diff_reports_unknown_missing_and_retired_in_order() -> None:
    ga = _ga_ids()
    listed = ["new/a", *ga[2:], "deepseek-ai/DeepSeek-R1-0528", "new/b", "new/a"]
    diff = diff_listing(listed)
    assert diff.unknown == ("new/a", "new/b")
    assert diff.missing == tuple(ga[:2])
    assert diff.retired_but_listed == ("deepseek-ai/DeepSeek-R1-0528",)
    assert diff.has_differences
    assert diff_listing(["new/a"]).missing == tuple(ga)
    assert CatalogDiff(missing=("x",)).has_differences
    assert CatalogDiff(retired_but_listed=("x",)).has_differences


def test_an_empty_listing_is_not_authoritative() -> None:
    diff = diff_listing([])
    assert diff.empty_listing and diff.missing == () and not diff.has_differences


# --------------------------------------------------------------------------- check script


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_catalog_script", ROOT / "scripts" / "check_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _listing(ids: list[str], status: int = 200) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body: dict[str, Any] = {
            "object": "list",
            "data": [{"id": i, "object": "model", "created": 0, "owned_by": "x"} for i in ids],
        }
        if status != 200:
            body = {"error": {"message": "Authentication failed"}}
        return httpx.Response(status, content=json.dumps(body).encode())

    return httpx.MockTransport(handler), seen


def test_check_script_matching_listing_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    transport, seen = _listing(_ga_ids())
    code = _script().main(
        ["--base-url", "https://inference.test/v1/", "--api-key", "sk-SECRET", "--project", "team/proj"], transport
    )
    assert code == 0
    assert "matches" in capsys.readouterr().out
    assert str(seen[0].url) == "https://inference.test/v1/models"
    assert seen[0].headers["authorization"] == "Bearer sk-SECRET"
    assert seen[0].headers["openai-project"] == "team/proj"


def test_check_script_prints_differences_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "sk-from-env")
    transport, seen = _listing(["new/model", *_ga_ids()[1:], "microsoft/Phi-4-mini-instruct"])
    code = _script().main(["--base-url", "https://inference.test/v1"], transport)
    out = capsys.readouterr().out
    assert code == 1
    assert "+ new/model" in out
    first = CATALOG[0]
    assert f"- {first.id}  (client.{first.constructor}())" in out
    assert "! microsoft/Phi-4-mini-instruct" in out
    assert seen[0].headers["authorization"] == "Bearer sk-from-env"
    assert "openai-project" not in seen[0].headers


def test_check_script_empty_listing_and_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    script = _script()
    transport, _ = _listing([])
    assert script.main(["--base-url", "https://inference.test/v1"], transport) == 2
    assert "never authoritative" in capsys.readouterr().err
    transport, _ = _listing(["x"], status=401)
    assert script.main(["--base-url", "https://inference.test/v1", "--api-key", "sk-SECRET"], transport) == 2
    err = capsys.readouterr().err
    assert "401" in err and "sk-SECRET" not in err

    def not_a_list(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"models": []}')

    assert script.main(["--base-url", "https://inference.test/v1"], httpx.MockTransport(not_a_list)) == 2
    assert "expected" in capsys.readouterr().err


def test_no_chat_keys_hold_every_lookup_form_of_the_models_that_serve_no_chat() -> None:
    """`check_capabilities` skips the catalog for a text chat to any other id: so every id
    `get_model_info` resolves to a model that serves no chat must be in `NO_CHAT_KEYS`."""
    from wandb_inference._catalog._constructors import NO_CHAT_KEYS

    for info in CATALOG:
        forms = [info.id, staging_id(info.id), info.id.upper(), staging_id(info.id).lower()]
        for form in forms:
            assert get_model_info(form) is info
            assert (form.casefold() in NO_CHAT_KEYS) is (not info.capabilities.chat), form
