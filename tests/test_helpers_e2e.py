"""The user helpers end to end against the local server, with both clients' real sockets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import attrs
import pytest

import wandb_inference as wi
from wandb_inference.server import LocalServer

MODEL = "meta-llama/Llama-3.3-70B-Instruct"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000") + b"\x00" * 16


@pytest.fixture(scope="module")
def client() -> Iterator[wi.Client]:
    with LocalServer() as server, wi.Client(api_key="k", base_url=server.base_url) as c:
        yield c


@attrs.define
class City:
    name: str
    population: int
    tags: list[str]
    size: Literal["small", "large"] = "small"


def test_structured_output_round_trip(client: wi.Client) -> None:
    reply = client.llama_3_3_70b().create(
        messages=[{"role": "user", "content": "A city, as JSON."}], response_format=wi.response_format_from(City)
    )
    city = wi.parse_structured(reply.text, City)
    assert isinstance(city, City) and isinstance(city.population, int) and city.size in ("small", "large")


def get_weather(city: str, unit: Literal["C", "F"] = "C") -> dict[str, object]:
    """The weather in a city.

    Args:
        city: the city's name.
        unit: degrees Celsius or Fahrenheit.
    """
    return {"city": city, "temperature": 21, "unit": unit}


def test_tool_calling_round_trip(client: wi.Client) -> None:
    tools = [wi.function_tool(get_weather)]
    messages: list[dict[str, object]] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.create(model=MODEL, messages=messages, tools=tools, tool_choice="required")
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "tool_calls"
    results = wi.run_tool_calls(message.tool_calls, {"get_weather": get_weather})
    assert results and json.loads(str(results[0]["content"]))["temperature"] == 21
    messages.append(message.to_dict())
    messages += results
    final = client.chat.create(model=MODEL, messages=messages, tools=tools)
    assert final.text and final.choices[0].finish_reason == "stop"


def test_image_parts_to_a_vision_model(client: wi.Client, tmp_path: Path) -> None:
    path = tmp_path / "pixel.png"
    path.write_bytes(PNG)
    content = [wi.text_part("What is in this picture?"), wi.image_part(path, detail="low")]
    assert content[1]["image_url"]["url"].startswith("data:image/png;base64,")
    reply = client.gemma_4_31b().create(messages=[{"role": "user", "content": content}], max_tokens=400)
    assert reply.text
    with pytest.raises(wi.CapabilityError):
        client.llama_3_3_70b().create(messages=[{"role": "user", "content": content}])


def test_reasoning_is_kept_apart(client: wi.Client) -> None:
    thinker = client.gpt_oss_20b()
    reply = thinker.create(messages=[{"role": "user", "content": "Why?"}], max_tokens=600)
    assert reply.reasoning and reply.text and reply.reasoning not in reply.text
    assert thinker.ask("Why?", max_tokens=600) == reply.text
