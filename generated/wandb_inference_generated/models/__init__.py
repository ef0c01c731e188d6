"""Contains all the data models used in inputs/outputs"""

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
from .tool import Tool
from .tool_call import ToolCall
from .tool_call_delta import ToolCallDelta
from .tool_choice_mode import ToolChoiceMode
from .tool_message import ToolMessage
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
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoiceMode",
    "ToolMessage",
    "Usage",
    "UserMessage",
)
