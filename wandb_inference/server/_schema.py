"""The request schemas of `openapi/openapi.yaml`, vendored for the server's validation.

The OpenAPI document is not installed with the package, so the server carries the part it
validates against: `components/schemas` reachable from `ChatCompletionRequest` and
`EmbeddingRequest`, with `description` and `default` dropped (they do not validate).
`tests/test_server_openapi.py` fails when this copy and the document drift apart.
"""

from __future__ import annotations

from typing import Any, Final

__all__ = ["REQUEST_SCHEMAS"]

REQUEST_SCHEMAS: Final[dict[str, Any]] = {
    "ChatCompletionRequest": {
        "type": "object",
        "required": ["model", "messages"],
        "properties": {
            "model": {"type": "string"},
            "messages": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/components/schemas/ChatMessage"},
            },
            "max_tokens": {"type": ["integer", "null"], "minimum": 1},
            "temperature": {"type": ["number", "null"], "minimum": 0, "maximum": 2},
            "top_p": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "n": {"type": ["integer", "null"], "minimum": 1, "maximum": 128},
            "stop": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "maxItems": 4, "items": {"type": "string"}},
                    {"type": "null"},
                ]
            },
            "seed": {"type": ["integer", "null"]},
            "presence_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
            "frequency_penalty": {"type": ["number", "null"], "minimum": -2, "maximum": 2},
            "logit_bias": {"anyOf": [{"$ref": "#/components/schemas/LogitBias"}, {"type": "null"}]},
            "response_format": {"$ref": "#/components/schemas/ResponseFormat"},
            "tools": {"type": "array", "items": {"$ref": "#/components/schemas/Tool"}},
            "tool_choice": {"$ref": "#/components/schemas/ToolChoice"},
            "parallel_tool_calls": {"type": ["boolean", "null"]},
            "functions": {
                "type": "array",
                "items": {"$ref": "#/components/schemas/FunctionDefinition"},
            },
            "function_call": {"$ref": "#/components/schemas/FunctionCallChoice"},
            "stream": {"type": ["boolean", "null"]},
            "stream_options": {"anyOf": [{"$ref": "#/components/schemas/StreamOptions"}, {"type": "null"}]},
            "chat_template_kwargs": {"anyOf": [{"$ref": "#/components/schemas/ChatTemplateKwargs"}, {"type": "null"}]},
            "cache_salt": {"type": ["string", "null"]},
            "reasoning_effort": {"anyOf": [{"$ref": "#/components/schemas/ReasoningEffort"}, {"type": "null"}]},
            "user": {"type": ["string", "null"]},
        },
    },
    "ChatMessage": {
        "anyOf": [
            {"$ref": "#/components/schemas/UserMessage"},
            {"$ref": "#/components/schemas/AssistantMessage"},
            {"$ref": "#/components/schemas/SystemMessage"},
            {"$ref": "#/components/schemas/ToolMessage"},
        ]
    },
    "UserMessage": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "const": "user"},
            "content": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/UserContentPart"}},
                ]
            },
            "name": {"type": "string"},
        },
    },
    "UserContentPart": {
        "anyOf": [
            {"$ref": "#/components/schemas/TextContentPart"},
            {"$ref": "#/components/schemas/ImageContentPart"},
        ]
    },
    "TextContentPart": {
        "type": "object",
        "required": ["type", "text"],
        "properties": {"type": {"type": "string", "const": "text"}, "text": {"type": "string"}},
    },
    "ImageContentPart": {
        "type": "object",
        "required": ["type", "image_url"],
        "properties": {
            "type": {"type": "string", "const": "image_url"},
            "image_url": {"$ref": "#/components/schemas/ImageURL"},
        },
    },
    "ImageURL": {
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": {"type": "string"},
            "detail": {"$ref": "#/components/schemas/ImageDetail"},
        },
    },
    "ImageDetail": {"type": "string", "enum": ["auto", "low", "high"]},
    "AssistantMessage": {
        "type": "object",
        "required": ["role"],
        "properties": {
            "role": {"type": "string", "const": "assistant"},
            "content": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/TextContentPart"}},
                    {"type": "null"},
                ]
            },
            "name": {"type": "string"},
            "tool_calls": {"type": "array", "items": {"$ref": "#/components/schemas/ToolCall"}},
            "function_call": {"anyOf": [{"$ref": "#/components/schemas/FunctionCall"}, {"type": "null"}]},
            "reasoning": {"type": ["string", "null"]},
        },
    },
    "ToolCall": {
        "type": "object",
        "required": ["id", "type", "function"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "function": {"$ref": "#/components/schemas/FunctionCall"},
        },
    },
    "FunctionCall": {
        "type": "object",
        "required": ["name", "arguments"],
        "properties": {"name": {"type": "string"}, "arguments": {"type": "string"}},
    },
    "SystemMessage": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "const": "system"},
            "content": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/TextContentPart"}},
                ]
            },
            "name": {"type": "string"},
        },
    },
    "ToolMessage": {
        "type": "object",
        "required": ["role", "content", "tool_call_id"],
        "properties": {
            "role": {"type": "string", "const": "tool"},
            "content": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "items": {"$ref": "#/components/schemas/TextContentPart"}},
                ]
            },
            "tool_call_id": {"type": "string"},
        },
    },
    "LogitBias": {"type": "object", "additionalProperties": {"type": "number"}},
    "ResponseFormat": {
        "anyOf": [
            {"$ref": "#/components/schemas/ResponseFormatJsonObject"},
            {"$ref": "#/components/schemas/ResponseFormatJsonSchema"},
            {"$ref": "#/components/schemas/ResponseFormatText"},
        ]
    },
    "ResponseFormatJsonObject": {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"type": "string", "const": "json_object"}},
    },
    "ResponseFormatJsonSchema": {
        "type": "object",
        "required": ["type", "json_schema"],
        "properties": {
            "type": {"type": "string", "const": "json_schema"},
            "json_schema": {"$ref": "#/components/schemas/JsonSchemaFormat"},
        },
    },
    "JsonSchemaFormat": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "schema": {"$ref": "#/components/schemas/JsonSchemaObject"},
            "strict": {"type": ["boolean", "null"]},
        },
    },
    "JsonSchemaObject": {"type": "object"},
    "ResponseFormatText": {
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"type": "string", "const": "text"}},
    },
    "Tool": {
        "type": "object",
        "required": ["type", "function"],
        "properties": {
            "type": {"type": "string", "const": "function"},
            "function": {"$ref": "#/components/schemas/FunctionDefinition"},
        },
    },
    "FunctionDefinition": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "parameters": {"$ref": "#/components/schemas/FunctionParameters"},
            "strict": {"type": ["boolean", "null"]},
        },
    },
    "FunctionParameters": {"type": "object"},
    "ToolChoice": {
        "anyOf": [
            {"$ref": "#/components/schemas/ToolChoiceMode"},
            {"$ref": "#/components/schemas/NamedToolChoice"},
        ]
    },
    "ToolChoiceMode": {"type": "string", "enum": ["none", "auto", "required"]},
    "NamedToolChoice": {
        "type": "object",
        "required": ["type", "function"],
        "properties": {
            "type": {"type": "string", "const": "function"},
            "function": {"$ref": "#/components/schemas/FunctionName"},
        },
    },
    "FunctionName": {
        "type": "object",
        "required": ["name"],
        "properties": {"name": {"type": "string"}},
    },
    "FunctionCallChoice": {
        "anyOf": [
            {"$ref": "#/components/schemas/FunctionCallMode"},
            {"$ref": "#/components/schemas/FunctionName"},
        ]
    },
    "FunctionCallMode": {"type": "string", "enum": ["none", "auto"]},
    "StreamOptions": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
    "ChatTemplateKwargs": {
        "type": "object",
        "properties": {"enable_thinking": {"type": "boolean"}},
    },
    "ReasoningEffort": {"type": "string", "enum": ["low", "medium", "high"]},
    "EmbeddingRequest": {
        "type": "object",
        "required": ["model", "input"],
        "properties": {
            "model": {"type": "string"},
            "input": {
                "anyOf": [
                    {"type": "string"},
                    {"type": "array", "minItems": 1, "items": {"type": "string"}},
                ]
            },
            "encoding_format": {"$ref": "#/components/schemas/EncodingFormat"},
            "dimensions": {"type": ["integer", "null"], "minimum": 1},
            "user": {"type": ["string", "null"]},
        },
    },
    "EncodingFormat": {"type": "string", "enum": ["float", "base64"]},
}
