"""CPU per typed parse: json.loads alone vs the generated from_dict vs the fast parsers.

python benchmarks/micro_parse.py
"""

from __future__ import annotations

import json
import timeit

from wandb_inference._types._chunk import ChatCompletionChunk, parse_chunk
from wandb_inference._types._completion import ChatCompletion, parse_completion

CHUNK = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1760000000,
        "model": "meta-llama/Llama-3.3-70B-Instruct",
        "choices": [{"index": 0, "delta": {"content": " hello"}, "finish_reason": None}],
    }
)
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1760000000,
        "model": "meta-llama/Llama-3.3-70B-Instruct",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello " * 20}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21},
    }
)


REASONING_CHUNK = CHUNK.replace('"content"', '"reasoning"')
USAGE_CHUNK = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1760000000,
        "model": "meta-llama/Llama-3.3-70B-Instruct",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 16, "total_tokens": 21},
    }
)


def generated_chunk(data: dict[str, object]) -> ChatCompletionChunk:
    """The generated `from_dict` (the facade's `from_dict` is `parse_chunk`)."""
    return super(ChatCompletionChunk, ChatCompletionChunk).from_dict(data)


def generated_completion(data: dict[str, object]) -> ChatCompletion:
    """The generated `from_dict` (the facade's `from_dict` is `parse_completion`)."""
    return super(ChatCompletion, ChatCompletion).from_dict(data)


def best(fn: object, number: int = 50_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    rows = [
        ("chunk: json.loads", best(lambda: json.loads(CHUNK))),
        ("chunk: json.loads + generated from_dict", best(lambda: generated_chunk(json.loads(CHUNK)))),
        ("chunk: json.loads + parse_chunk", best(lambda: parse_chunk(json.loads(CHUNK)))),
        ("reasoning chunk: json.loads + parse_chunk", best(lambda: parse_chunk(json.loads(REASONING_CHUNK)))),
        ("usage chunk: json.loads + parse_chunk", best(lambda: parse_chunk(json.loads(USAGE_CHUNK)))),
        ("completion: json.loads", best(lambda: json.loads(COMPLETION))),
        ("completion: + generated from_dict", best(lambda: generated_completion(json.loads(COMPLETION)))),
        ("completion: + parse_completion", best(lambda: parse_completion(json.loads(COMPLETION)))),
    ]
    for name, us in rows:
        print(f"{name:45s} {us:6.2f} us")


if __name__ == "__main__":
    main()
