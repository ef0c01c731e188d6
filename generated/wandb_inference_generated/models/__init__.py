"""Contains all the data models used in inputs/outputs.

A model's module is imported when its name is first used (PEP 562): importing one model
does not build all of them. Custom template: openapi/templates/models_init.py.jinja.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .assistant_message import AssistantMessage
    from .chat_completion import ChatCompletion
    from .chat_completion_choice import ChatCompletionChoice
    from .chat_completion_chunk import ChatCompletionChunk
    from .chat_completion_chunk_choice import ChatCompletionChunkChoice
    from .chat_completion_delta import ChatCompletionDelta
    from .chat_completion_message import ChatCompletionMessage
    from .chat_completion_request import ChatCompletionRequest
    from .chat_template_kwargs import ChatTemplateKwargs
    from .completion_tokens_details import CompletionTokensDetails
    from .embedding_data import EmbeddingData
    from .embedding_request import EmbeddingRequest
    from .embedding_response import EmbeddingResponse
    from .embedding_usage import EmbeddingUsage
    from .encoding_format import EncodingFormat
    from .error_detail import ErrorDetail
    from .error_response import ErrorResponse
    from .function_call import FunctionCall
    from .function_call_delta import FunctionCallDelta
    from .function_call_mode import FunctionCallMode
    from .function_definition import FunctionDefinition
    from .function_name import FunctionName
    from .function_parameters import FunctionParameters
    from .image_content_part import ImageContentPart
    from .image_detail import ImageDetail
    from .image_url import ImageURL
    from .json_schema_format import JsonSchemaFormat
    from .json_schema_object import JsonSchemaObject
    from .logit_bias import LogitBias
    from .logprobs import Logprobs
    from .model import Model
    from .model_list import ModelList
    from .named_tool_choice import NamedToolChoice
    from .prompt_tokens_details import PromptTokensDetails
    from .reasoning_effort import ReasoningEffort
    from .response_format_json_object import ResponseFormatJsonObject
    from .response_format_json_schema import ResponseFormatJsonSchema
    from .response_format_text import ResponseFormatText
    from .stream_options import StreamOptions
    from .system_message import SystemMessage
    from .text_content_part import TextContentPart
    from .token_logprob import TokenLogprob
    from .tool import Tool
    from .tool_call import ToolCall
    from .tool_call_delta import ToolCallDelta
    from .tool_choice_mode import ToolChoiceMode
    from .tool_message import ToolMessage
    from .top_logprob import TopLogprob
    from .usage import Usage
    from .user_message import UserMessage

__all__ = (
    "AssistantMessage",
    "ChatCompletion",
    "ChatCompletionChoice",
    "ChatCompletionChunk",
    "ChatCompletionChunkChoice",
    "ChatCompletionDelta",
    "ChatCompletionMessage",
    "ChatCompletionRequest",
    "ChatTemplateKwargs",
    "CompletionTokensDetails",
    "EmbeddingData",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "EncodingFormat",
    "ErrorDetail",
    "ErrorResponse",
    "FunctionCall",
    "FunctionCallDelta",
    "FunctionCallMode",
    "FunctionDefinition",
    "FunctionName",
    "FunctionParameters",
    "ImageContentPart",
    "ImageDetail",
    "ImageURL",
    "JsonSchemaFormat",
    "JsonSchemaObject",
    "LogitBias",
    "Logprobs",
    "Model",
    "ModelList",
    "NamedToolChoice",
    "PromptTokensDetails",
    "ReasoningEffort",
    "ResponseFormatJsonObject",
    "ResponseFormatJsonSchema",
    "ResponseFormatText",
    "StreamOptions",
    "SystemMessage",
    "TextContentPart",
    "TokenLogprob",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoiceMode",
    "ToolMessage",
    "TopLogprob",
    "Usage",
    "UserMessage",
)

_MODULES = {
    "AssistantMessage": ".assistant_message",
    "ChatCompletion": ".chat_completion",
    "ChatCompletionChoice": ".chat_completion_choice",
    "ChatCompletionChunk": ".chat_completion_chunk",
    "ChatCompletionChunkChoice": ".chat_completion_chunk_choice",
    "ChatCompletionDelta": ".chat_completion_delta",
    "ChatCompletionMessage": ".chat_completion_message",
    "ChatCompletionRequest": ".chat_completion_request",
    "ChatTemplateKwargs": ".chat_template_kwargs",
    "CompletionTokensDetails": ".completion_tokens_details",
    "EmbeddingData": ".embedding_data",
    "EmbeddingRequest": ".embedding_request",
    "EmbeddingResponse": ".embedding_response",
    "EmbeddingUsage": ".embedding_usage",
    "EncodingFormat": ".encoding_format",
    "ErrorDetail": ".error_detail",
    "ErrorResponse": ".error_response",
    "FunctionCall": ".function_call",
    "FunctionCallDelta": ".function_call_delta",
    "FunctionCallMode": ".function_call_mode",
    "FunctionDefinition": ".function_definition",
    "FunctionName": ".function_name",
    "FunctionParameters": ".function_parameters",
    "ImageContentPart": ".image_content_part",
    "ImageDetail": ".image_detail",
    "ImageURL": ".image_url",
    "JsonSchemaFormat": ".json_schema_format",
    "JsonSchemaObject": ".json_schema_object",
    "LogitBias": ".logit_bias",
    "Logprobs": ".logprobs",
    "Model": ".model",
    "ModelList": ".model_list",
    "NamedToolChoice": ".named_tool_choice",
    "PromptTokensDetails": ".prompt_tokens_details",
    "ReasoningEffort": ".reasoning_effort",
    "ResponseFormatJsonObject": ".response_format_json_object",
    "ResponseFormatJsonSchema": ".response_format_json_schema",
    "ResponseFormatText": ".response_format_text",
    "StreamOptions": ".stream_options",
    "SystemMessage": ".system_message",
    "TextContentPart": ".text_content_part",
    "TokenLogprob": ".token_logprob",
    "Tool": ".tool",
    "ToolCall": ".tool_call",
    "ToolCallDelta": ".tool_call_delta",
    "ToolChoiceMode": ".tool_choice_mode",
    "ToolMessage": ".tool_message",
    "TopLogprob": ".top_logprob",
    "Usage": ".usage",
    "UserMessage": ".user_message",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
