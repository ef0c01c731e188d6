"""wandb-inference: a typed, async-first Python SDK for W&B Inference.

```python
import wandb_inference

async with wandb_inference.AsyncClient() as client:      # key from WANDB_API_KEY
    reply = await client.chat.create(
        model="meta-llama/Llama-3.3-70B-Instruct",
        messages=[{"role": "user", "content": "Hello!"}],
    )
    print(reply.text)
```

`import wandb_inference` stays light: every public name loads with its module when first
used, so the generated models, the catalog, the local server and the CLI (and the client
you do not use) cost nothing until then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from ._async_client import AsyncClient
    from ._catalog._bound import AsyncChatModel, AsyncEmbeddingModel, ChatModel, EmbeddingModel, RetiredModelWarning
    from ._catalog._lookup import all_models, get_model_info
    from ._catalog._table import Capabilities, Lifecycle, ModelInfo
    from ._client import Client
    from ._exceptions import (
        APIConnectionError,
        APIError,
        APIResponseValidationError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        CapabilityError,
        ConfigurationError,
        InternalServerError,
        InvalidRequestError,
        NotFoundError,
        PermissionDeniedError,
        PersonalAccountError,
        QuotaExceededError,
        RateLimitError,
        ServiceUnavailableError,
        StreamError,
        StreamEventError,
        StreamInterruptedError,
        WandbInferenceError,
    )
    from ._helpers import (
        arun_tool_calls,
        function_tool,
        image_part,
        parse_structured,
        parse_tool_arguments,
        response_format_from,
        run_tool_calls,
        split_reasoning,
        text_part,
        tool_result_message,
    )
    from ._policy._aimd import AIMDLimit
    from ._policy._retry import RetryPolicy
    from ._streaming._streams import AsyncChatStream, ChatStream
    from ._types._chunk import ChatCompletionChunk
    from ._types._completion import ChatCompletion
    from ._types._embeddings import EmbeddingData, EmbeddingResponse
    from ._types._model_list import Model, ModelList

__all__ = [
    "AIMDLimit",
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AsyncChatModel",
    "AsyncChatStream",
    "AsyncClient",
    "AsyncEmbeddingModel",
    "AuthenticationError",
    "BadRequestError",
    "Capabilities",
    "CapabilityError",
    "ChatCompletion",
    "ChatCompletionChunk",
    "ChatModel",
    "ChatStream",
    "Client",
    "ConfigurationError",
    "EmbeddingData",
    "EmbeddingModel",
    "EmbeddingResponse",
    "InternalServerError",
    "InvalidRequestError",
    "Lifecycle",
    "Model",
    "ModelInfo",
    "ModelList",
    "NotFoundError",
    "PermissionDeniedError",
    "PersonalAccountError",
    "QuotaExceededError",
    "RateLimitError",
    "RetiredModelWarning",
    "RetryPolicy",
    "ServiceUnavailableError",
    "StreamError",
    "StreamEventError",
    "StreamInterruptedError",
    "WandbInferenceError",
    "__version__",
    "all_models",
    "arun_tool_calls",
    "function_tool",
    "get_model_info",
    "image_part",
    "parse_structured",
    "parse_tool_arguments",
    "response_format_from",
    "run_tool_calls",
    "split_reasoning",
    "text_part",
    "tool_result_message",
]

# Every public name loads with its module on first access (PEP 562), so that importing
# the package and constructing one client compiles and runs only what that client needs:
# not the other client, the bound models, request building (until the first call), the
# generated models, the catalog, the server or the CLI.
_LAZY = {
    "AsyncClient": "._async_client",
    "Client": "._client",
    "AIMDLimit": "._policy._aimd",
    "RetryPolicy": "._policy._retry",
    "AsyncChatModel": "._catalog._bound",
    "AsyncEmbeddingModel": "._catalog._bound",
    "ChatModel": "._catalog._bound",
    "EmbeddingModel": "._catalog._bound",
    "RetiredModelWarning": "._catalog._bound",
    **dict.fromkeys(
        (
            "APIConnectionError",
            "APIError",
            "APIResponseValidationError",
            "APIStatusError",
            "APITimeoutError",
            "AuthenticationError",
            "BadRequestError",
            "CapabilityError",
            "ConfigurationError",
            "InternalServerError",
            "InvalidRequestError",
            "NotFoundError",
            "PermissionDeniedError",
            "PersonalAccountError",
            "QuotaExceededError",
            "RateLimitError",
            "ServiceUnavailableError",
            "StreamError",
            "StreamEventError",
            "StreamInterruptedError",
            "WandbInferenceError",
        ),
        "._exceptions",
    ),
    "ChatCompletion": "._types._completion",
    "ChatCompletionChunk": "._types._chunk",
    "EmbeddingData": "._types._embeddings",
    "EmbeddingResponse": "._types._embeddings",
    "Model": "._types._model_list",
    "ModelList": "._types._model_list",
    "AsyncChatStream": "._streaming._streams",
    "ChatStream": "._streaming._streams",
    "Capabilities": "._catalog._table",
    "Lifecycle": "._catalog._table",
    "ModelInfo": "._catalog._table",
    "all_models": "._catalog._lookup",
    "get_model_info": "._catalog._lookup",
    "arun_tool_calls": "._helpers",
    "function_tool": "._helpers",
    "image_part": "._helpers",
    "parse_structured": "._helpers",
    "parse_tool_arguments": "._helpers",
    "response_format_from": "._helpers",
    "run_tool_calls": "._helpers",
    "split_reasoning": "._helpers",
    "text_part": "._helpers",
    "tool_result_message": "._helpers",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        if name == "tracing":  # the public submodule: `wandb_inference.tracing.to_weave(...)`
            import importlib

            return importlib.import_module(".tracing", __name__)
        raise AttributeError(f"module 'wandb_inference' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
