"""The model catalog: one table of what the SDK knows about W&B Inference models.

`GET /models` exposes no context window or capabilities, so this table is the SDK's
knowledge; it drives the per-model constructors, capability checks, the local server's
model list and `models.list()` enrichment. Ids the table does not know still work
everywhere.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import attrs

__all__ = ["CATALOG", "Capabilities", "Lifecycle", "ModelInfo", "get_model_info"]

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
        context_window: tokens of context.
        capabilities: what it can do.
        lifecycle: stage, retirement date and replacement.
        constructor: the name of the per-model constructor on the clients.
        embedding_dimensions: vector size for embedding models.
    """

    id: str
    name: str
    family: str
    context_window: int
    capabilities: Capabilities = Capabilities()
    lifecycle: Lifecycle = Lifecycle()
    constructor: str
    embedding_dimensions: int | None = None


CATALOG: tuple[ModelInfo, ...] = (
    ModelInfo(
        id="meta-llama/Llama-3.3-70B-Instruct",
        name="Llama 3.3 70B",
        family="llama",
        context_window=128_000,
        capabilities=Capabilities(tools=True, json_schema=True),
        constructor="llama_3_3_70b",
    ),
    ModelInfo(
        id="BAAI/bge-m3",
        name="BGE M3",
        family="bge",
        context_window=8_192,
        capabilities=Capabilities(chat=False, embeddings=True),
        constructor="bge_m3",
        embedding_dimensions=1024,
    ),
)

_BY_ID = {m.id: m for m in CATALOG}


def get_model_info(model_id: str) -> ModelInfo | None:
    """The catalog row for `model_id` (exact id), or None for ids the catalog lacks."""
    return _BY_ID.get(model_id)
