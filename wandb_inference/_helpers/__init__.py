"""User helpers: pure functions that build request parts and read replies (no I/O).

- content parts: `text_part`, `image_part` (files, bytes, URLs) -> `_images`
- structured output: `response_format_from`, `parse_structured` -> `_structured`
- reasoning: `split_reasoning` (a `<think>` block left in the content) -> `_reasoning`
- tool calling: `function_tool`, `tool_result_message`, `parse_tool_arguments`,
  `run_tool_calls`, `arun_tool_calls` -> `_tools`

Everything here imports only the standard library and attrs, so re-exporting it keeps
`import wandb_inference` light.
"""

from __future__ import annotations

from ._images import MAX_IMAGE_BYTES, image_part, text_part
from ._reasoning import split_reasoning
from ._structured import parse_structured, response_format_from
from ._tools import (
    ToolCallLike,
    arun_tool_calls,
    function_tool,
    parse_tool_arguments,
    run_tool_calls,
    tool_result_message,
)

__all__ = [
    "MAX_IMAGE_BYTES",
    "ToolCallLike",
    "arun_tool_calls",
    "function_tool",
    "image_part",
    "parse_structured",
    "parse_tool_arguments",
    "response_format_from",
    "run_tool_calls",
    "split_reasoning",
    "text_part",
    "tool_result_message",
]
