"""The model catalog: one table of what the SDK knows about W&B Inference models.

`GET /models` exposes no context window or capabilities, so this table is the SDK's
knowledge; it drives the per-model constructors, capability checks, the local server's
model list and `models.list()` enrichment. Ids the table does not know still work
everywhere. The lookups over it (by id, by constructor, against a live listing) are in
`_lookup.py`; this module is the row types and the rows.

How the rows were filled (keep to it when editing):

- Facts come from SERVICE.md (W&B's and CoreWeave's docs through Sep 2026) first, then
  from the model cards. A row whose facts are partly the SDK's best guess says which in
  `notes`; rows with empty `notes` are fully documented.
- `context_window` is the figure the service publishes, exact where the published figure
  is a rounded power of two (262k = 262_144, 131k = 131_072, 1049k = 1_048_576); for
  models the service documents no figure, the model card's.
- A model is `retired` only with a documented date: the SDK never invents one. Models
  SERVICE.md does not mention in the 2026 catalogs stay `ga` with a note saying their
  status is unverified; `scripts/check_catalog.py` compares the table with a live
  `/models` listing.
- Every retired row names a `replacement` that is in the table and not retired.
- `tools` / `json_schema`: W&B serves through vLLM, whose structured outputs work with
  any model, and whose tool-call parsers exist for the families marked `tools=True`.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import attrs

__all__ = ["CATALOG", "Capabilities", "Lifecycle", "ModelInfo"]

Reasoning = Literal["off", "optional", "on", "always"]
"""`off`: never reasons. `optional`: can, off by default. `on`: on by default, can be
switched off (`chat_template_kwargs={"enable_thinking": False}`). `always`: cannot be off."""

Stage = Literal["experimental", "ga", "deprecated", "retired"]


@attrs.frozen(kw_only=True)
class Capabilities:
    """What a model can do."""

    chat: bool = True
    vision: bool = False
    tools: bool = False
    json_schema: bool = False
    reasoning: Reasoning = "off"
    embeddings: bool = False


@attrs.frozen(kw_only=True)
class Lifecycle:
    """Where a model is in its life: retired models answer 404 on every request."""

    stage: Stage = "ga"
    retired_on: dt.date | None = None
    replacement: str | None = None


@attrs.frozen(kw_only=True)
class ModelInfo:
    """One catalog row.

    Attributes:
        id: the id sent as `model`.
        name: display name.
        family: model family (llama, qwen, deepseek, ...).
        context_window: tokens of context (0 when unknown: rows the catalog lacks).
        capabilities: what it can do.
        lifecycle: stage, retirement date and replacement.
        constructor: the name of the per-model constructor on the clients ("" for rows
            the catalog lacks).
        embedding_dimensions: vector size for embedding models.
        notes: which facts of this row are uncertain or need a word of explanation.
        in_catalog: False for the minimal rows `join_listing` makes for ids the catalog
            does not know.
    """

    id: str
    name: str
    family: str
    context_window: int
    capabilities: Capabilities = Capabilities()
    lifecycle: Lifecycle = Lifecycle()
    constructor: str
    embedding_dimensions: int | None = None
    notes: str = ""
    in_catalog: bool = True

    @classmethod
    def unknown(cls, model_id: str) -> ModelInfo:
        """The minimal row for an id the catalog does not know (a new model, a LoRA).

        Args:
            model_id: the id as the server listed it.

        Returns:
            A row named after the id, with unknown context (0), default chat-only
            capabilities, stage `ga` (the server serves it), no constructor and
            `in_catalog=False`.
        """
        return cls(
            id=model_id,
            name=model_id,
            family="unknown",
            context_window=0,
            constructor="",
            notes="Not in the SDK's catalog: context window and capabilities unknown.",
            in_catalog=False,
        )


_CHAT_TOOLS = Capabilities(tools=True, json_schema=True)
_UNVERIFIED = (
    "Not seen in the 2026 catalogs: its status is unverified (it may have been retired "
    "on a date the SDK does not know); check `client.models.list()`."
)

CATALOG: tuple[ModelInfo, ...] = (
    # ------------------------------------------------------------- 2026 catalogs
    ModelInfo(
        id="deepseek-ai/DeepSeek-V3.1",
        name="DeepSeek V3.1",
        family="deepseek",
        context_window=161_000,
        capabilities=Capabilities(tools=True, json_schema=True, reasoning="optional"),
        constructor="deepseek_v3_1",
        notes=(
            "Hybrid model: thinking is off by default; DeepSeek's template switches it on "
            "with chat_template_kwargs={'thinking': True}."
        ),
    ),
    ModelInfo(
        id="deepseek-ai/DeepSeek-V4-Flash-0731",
        name="DeepSeek V4 Flash",
        family="deepseek",
        context_window=262_144,
        capabilities=Capabilities(tools=True, json_schema=True, reasoning="optional"),
        constructor="deepseek_v4_flash",
        notes="Reasoning mode (hybrid, off by default) and tools assumed from DeepSeek V3.x.",
    ),
    ModelInfo(
        id="deepseek-ai/DeepSeek-V4-Pro-0813",
        name="DeepSeek V4 Pro",
        family="deepseek",
        context_window=1_048_576,
        capabilities=Capabilities(tools=True, json_schema=True, reasoning="optional"),
        constructor="deepseek_v4_pro",
        notes="Reasoning mode (hybrid, off by default) and tools assumed from DeepSeek V3.x.",
    ),
    ModelInfo(
        id="deepseek-ai/DeepSeek-V4.1-Flash",
        name="DeepSeek V4.1 Flash",
        family="deepseek",
        context_window=1_048_576,
        capabilities=Capabilities(vision=True, tools=True, json_schema=True, reasoning="optional"),
        constructor="deepseek_v4_1_flash",
        notes="Reasoning mode (hybrid, off by default) and tools assumed from DeepSeek V3.x.",
    ),
    ModelInfo(
        id="google/gemma-4-31B-it",
        name="Gemma 4 31B",
        family="gemma",
        context_window=262_144,
        capabilities=Capabilities(vision=True, tools=True, json_schema=True, reasoning="on"),
        constructor="gemma_4_31b",
        notes="Tool calling assumed (not documented by the service).",
    ),
    ModelInfo(
        id="google/gemma-4-26B-A4B-it",
        name="Gemma 4 26B A4B",
        family="gemma",
        context_window=262_144,
        capabilities=Capabilities(vision=True, tools=True, json_schema=True, reasoning="optional"),
        constructor="gemma_4_26b",
        notes=(
            "The service documents no reasoning default for this model (the 31B reasons "
            "by default): assumed off by default. Tool calling assumed."
        ),
    ),
    ModelInfo(
        id="meta-llama/Llama-3.1-8B-Instruct",
        name="Llama 3.1 8B",
        family="llama",
        context_window=128_000,
        capabilities=_CHAT_TOOLS,
        constructor="llama_3_1_8b",
    ),
    ModelInfo(
        id="meta-llama/Llama-3.1-70B-Instruct",
        name="Llama 3.1 70B",
        family="llama",
        context_window=128_000,
        capabilities=_CHAT_TOOLS,
        constructor="llama_3_1_70b",
    ),
    ModelInfo(
        id="meta-llama/Llama-3.3-70B-Instruct",
        name="Llama 3.3 70B",
        family="llama",
        context_window=128_000,
        capabilities=_CHAT_TOOLS,
        constructor="llama_3_3_70b",
    ),
    ModelInfo(
        id="moonshotai/Kimi-K2.5",
        name="Kimi K2.5",
        family="kimi",
        context_window=262_144,
        capabilities=Capabilities(vision=True, tools=True, json_schema=True, reasoning="on"),
        constructor="kimi_k2_5",
    ),
    ModelInfo(
        id="openai/gpt-oss-120b",
        name="gpt-oss-120b",
        family="gpt-oss",
        context_window=131_072,
        capabilities=Capabilities(tools=True, json_schema=True, reasoning="always"),
        constructor="gpt_oss_120b",
        notes="Reasoning cannot be switched off; reasoning_effort sets how much.",
    ),
    ModelInfo(
        id="openai/gpt-oss-20b",
        name="gpt-oss-20b",
        family="gpt-oss",
        context_window=131_072,
        capabilities=Capabilities(tools=True, json_schema=True, reasoning="always"),
        constructor="gpt_oss_20b",
        notes="Reasoning cannot be switched off; reasoning_effort sets how much.",
    ),
    ModelInfo(
        id="Qwen/Qwen3-235B-A22B-Instruct-2507",
        name="Qwen3 235B A22B Instruct 2507",
        family="qwen",
        context_window=262_144,
        capabilities=_CHAT_TOOLS,
        constructor="qwen3_235b_instruct",
    ),
    ModelInfo(
        id="Qwen/Qwen3-235B-A22B-Thinking-2507",
        name="Qwen3 235B A22B Thinking 2507",
        family="qwen",
        context_window=262_144,
        capabilities=Capabilities(tools=True, json_schema=True, reasoning="always"),
        constructor="qwen3_235b_thinking",
        notes="A thinking-only model: reasoning cannot be switched off.",
    ),
    ModelInfo(
        id="Qwen/Qwen3-Coder-480B-A35B-Instruct",
        name="Qwen3 Coder 480B A35B",
        family="qwen",
        context_window=262_144,
        capabilities=_CHAT_TOOLS,
        constructor="qwen3_coder_480b",
    ),
    ModelInfo(
        id="Qwen/Qwen3-30B-A3B-Instruct-2507",
        name="Qwen3 30B A3B Instruct 2507",
        family="qwen",
        context_window=262_144,
        capabilities=_CHAT_TOOLS,
        constructor="qwen3_30b_a3b",
    ),
    ModelInfo(
        id="OpenPipe/Qwen3-14B-Instruct",
        name="OpenPipe Qwen3 14B Instruct",
        family="qwen",
        context_window=32_768,
        capabilities=_CHAT_TOOLS,
        constructor="qwen3_14b",
        notes="Qwen3 14B with thinking disabled in its template (a base for LoRA fine-tunes).",
    ),
    ModelInfo(
        id="zai-org/GLM-5-FP8",
        name="GLM-5",
        family="glm",
        context_window=200_000,
        capabilities=Capabilities(tools=True, json_schema=True, reasoning="on"),
        constructor="glm_5",
        notes="Reasoning on by default assumed from GLM-4.5 and later (not documented).",
    ),
    ModelInfo(
        id="ibm-granite/granite-4.1-8b",
        name="Granite 4.1 8B",
        family="granite",
        context_window=131_072,
        capabilities=_CHAT_TOOLS,
        constructor="granite_4_1_8b",
        notes="Tool calling assumed from Granite 3.3 and 4.0 (not documented).",
    ),
    ModelInfo(
        id="MiniMaxAI/MiniMax-M2.5",
        name="MiniMax M2.5",
        family="minimax",
        context_window=196_608,
        capabilities=Capabilities(tools=True, json_schema=True, reasoning="always"),
        constructor="minimax_m2_5",
        notes=(
            "Always-on (interleaved) thinking assumed from MiniMax M2; its <think> block "
            "may arrive inside the content (see split_reasoning)."
        ),
    ),
    # ------------------------------------------------------------- seed-era models
    ModelInfo(
        id="deepseek-ai/DeepSeek-R1-0528",
        name="DeepSeek R1",
        family="deepseek",
        context_window=161_000,
        capabilities=Capabilities(tools=True, json_schema=True, reasoning="always"),
        lifecycle=Lifecycle(
            stage="retired",
            retired_on=dt.date(2026, 3, 4),
            replacement="deepseek-ai/DeepSeek-V3.1",
        ),
        constructor="deepseek_r1",
        notes=(
            "Replacement chosen by the SDK (same family; switch its thinking on with "
            "chat_template_kwargs={'thinking': True})."
        ),
    ),
    ModelInfo(
        id="Qwen/QwQ-32B",
        name="QwQ 32B",
        family="qwen",
        context_window=131_072,
        capabilities=Capabilities(tools=True, json_schema=True, reasoning="always"),
        constructor="qwq_32b",
        notes=_UNVERIFIED + " Context window from the model card (32k native, 131k YaRN).",
    ),
    ModelInfo(
        id="BAAI/bge-m3",
        name="BGE M3",
        family="bge",
        context_window=8_192,
        capabilities=Capabilities(chat=False, embeddings=True),
        lifecycle=Lifecycle(stage="deprecated"),
        constructor="bge_m3",
        embedding_dimensions=1024,
        notes=(
            "W&B's current catalog lists no embedding model, so the service no longer "
            "serves it (no retirement date known, no replacement); OpenAI-compatible "
            "servers and the SDK's local server still do."
        ),
    ),
    ModelInfo(
        id="mistralai/Mistral-Small-3.1-24B-Instruct-2503",
        name="Mistral Small 3.1",
        family="mistral",
        context_window=131_072,
        capabilities=Capabilities(vision=True, tools=True, json_schema=True),
        constructor="mistral_small_3_1",
        notes=_UNVERIFIED + " Context window from the model card (128k).",
    ),
    ModelInfo(
        id="meta-llama/Llama-4-Scout-17B-16E-Instruct",
        name="Llama 4 Scout",
        family="llama",
        context_window=64_000,
        capabilities=Capabilities(vision=True, tools=True, json_schema=True),
        lifecycle=Lifecycle(
            stage="retired",
            retired_on=dt.date(2026, 4, 21),
            replacement="google/gemma-4-26B-A4B-it",
        ),
        constructor="llama_4_scout",
        notes=(
            "Context window as W&B served it (about 64k; the model card's is 10M), "
            "recalled, unverified. Replacement chosen by the SDK (a served MoE vision model)."
        ),
    ),
    ModelInfo(
        id="Qwen/Qwen2.5-VL-7B-Instruct",
        name="Qwen 2.5 VL 7B",
        family="qwen",
        context_window=32_768,
        capabilities=Capabilities(vision=True, json_schema=True),
        constructor="qwen_2_5_vl_7b",
        notes=_UNVERIFIED + " Context window from the model card; tool calling not assumed.",
    ),
    ModelInfo(
        id="microsoft/Phi-4-mini-instruct",
        name="Phi 4 Mini",
        family="phi",
        context_window=131_072,
        capabilities=_CHAT_TOOLS,
        lifecycle=Lifecycle(
            stage="retired",
            retired_on=dt.date(2026, 7, 20),
            replacement="meta-llama/Llama-3.1-8B-Instruct",
        ),
        constructor="phi_4_mini",
        notes="Replacement chosen by the SDK (a small, served, tool-calling model).",
    ),
    ModelInfo(
        id="meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8",
        name="Llama 4 Maverick",
        family="llama",
        context_window=1_048_576,
        capabilities=Capabilities(vision=True, tools=True, json_schema=True),
        constructor="llama_4_maverick",
        notes=_UNVERIFIED + " Context window from the model card; the service may cap it lower.",
    ),
    ModelInfo(
        id="ibm-granite/granite-3.3-8b-instruct",
        name="Granite 3.3 8B",
        family="granite",
        context_window=131_072,
        capabilities=Capabilities(tools=True, json_schema=True, reasoning="optional"),
        constructor="granite_3_3_8b",
        notes=(
            _UNVERIFIED + " Context window from the model card. Reasoning is switched on "
            "with chat_template_kwargs={'thinking': True}."
        ),
    ),
)
