"""Separate a reasoning model's `<think>` block from its answer.

W&B returns reasoning in `message.reasoning` when its server parses it out, but some
models (and some deployments, proxies and fine-tunes) leave it in the content:

- `<think>steps</think>answer`: the usual form;
- `<think>steps...`: the reply was cut (max_tokens) while still thinking;
- `steps</think>answer`: the chat template already opened `<think>` in the prompt, so
  the model only emits the closing tag (DeepSeek R1, QwQ and others do this).
"""

from __future__ import annotations

__all__ = ["split_reasoning"]

_OPEN = "<think>"
_CLOSE = "</think>"


def split_reasoning(text: str) -> tuple[str | None, str]:
    """Split a leading `<think>...</think>` block from the answer.

    Only a block at the start of the text counts (leading whitespace allowed); a later
    `<think>` is part of the answer. An unclosed `<think>` makes all the rest reasoning;
    a `</think>` with no opening tag makes all before it reasoning.

    Args:
        text: the content of a reply.

    Returns:
        `(reasoning, answer)`, both whitespace-trimmed when a tag was found. `reasoning`
        is None when there is no think block or it is empty (Qwen3 with thinking
        switched off sends `<think>\\n\\n</think>`). Without any tag the text comes back
        unchanged as the answer.
    """
    stripped = text.lstrip()
    if stripped.startswith(_OPEN):
        body = stripped[len(_OPEN) :]
        end = body.find(_CLOSE)
        if end == -1:
            reasoning, answer = body, ""
        else:
            reasoning, answer = body[:end], body[end + len(_CLOSE) :]
    else:
        end = text.find(_CLOSE)
        if end == -1 or _OPEN in text[:end]:
            return None, text
        reasoning, answer = text[:end], text[end + len(_CLOSE) :]
    reasoning = reasoning.strip()
    return (reasoning or None), answer.strip()
