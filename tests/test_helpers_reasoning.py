"""`split_reasoning`: every shape of `<think>` block models leave in the content."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wandb_inference._helpers import split_reasoning


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>steps</think>answer", ("steps", "answer")),
        ("  \n<think>\n  steps \n</think>\n\n  answer \n", ("steps", "answer")),
        ("<think>line 1\n\nline 2</think>Answer:\n  indented", ("line 1\n\nline 2", "Answer:\n  indented")),
        ("<think>cut off while thinking", ("cut off while thinking", "")),
        ("<think>", (None, "")),
        ("steps only closed</think>\n\nanswer", ("steps only closed", "answer")),
        ("</think>answer", (None, "answer")),
        ("<think>\n\n</think>\n\nHello", (None, "Hello")),  # Qwen3 with thinking off
        ("<think></think>", (None, "")),
        ("<think>a</think>b</think>c", ("a", "b</think>c")),
        ("<think>a<think>b</think>c", ("a<think>b", "c")),
        ("<think>a</think>b <think>c</think>", ("a", "b <think>c</think>")),
    ],
)
def test_think_blocks(text: str, expected: tuple[str | None, str]) -> None:
    assert split_reasoning(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "  plain answer with spaces  \n",
        "Answer first <think>not reasoning</think> then more",
        "an answer that mentions <think> once",
        "<thinking>not our tag</thinking>",
        "<THINK>upper case is text</THINK>",
    ],
)
def test_text_without_a_leading_block_is_unchanged(text: str) -> None:
    assert split_reasoning(text) == (None, text)


@given(
    st.text(alphabet=st.characters(blacklist_characters="<>")),
    st.text(alphabet=st.characters(blacklist_characters="<>")),
)
def test_any_block_round_trips(reasoning: str, answer: str) -> None:
    got = split_reasoning(f"<think>{reasoning}</think>{answer}")
    assert got == (reasoning.strip() or None, answer.strip())
    assert split_reasoning(f"{reasoning}</think>{answer}") == (reasoning.strip() or None, answer.strip())
