"""`split_reasoning`: every shape of `<think>` block models leave in the content."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given, settings
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


# Text made of what matters to the parser (the tags, their fragments, angle brackets,
# look-alikes, whitespace) mixed with any other text.
_PIECES = ["<think>", "</think>", "<think", "</think", "think>", "<", ">", "/", "</", "<th", "nk>"]
_LOOK_ALIKES = ["<THINK>", "<thinking>", "</ think>", "< think>", "<think >"]
tagged_text = st.lists(
    st.sampled_from(_PIECES + _LOOK_ALIKES) | st.sampled_from([" ", "\n", "\t", "\u00a0"]) | st.text(max_size=6),
    max_size=12,
).map("".join)


def _reference(text: str) -> tuple[str | None, str]:
    """What the docstring says, with regular expressions instead of `find`."""
    opened = re.fullmatch(r"\s*<think>(.*?)(?:</think>(.*))?", text, re.DOTALL)
    if opened is not None:  # a leading block, closed at its first `</think>` (or never)
        reasoning, answer = opened.group(1), opened.group(2) or ""
    else:
        closed = re.fullmatch(r"(.*?)</think>(.*)", text, re.DOTALL)
        if closed is None or "<think>" in closed.group(1):
            return None, text  # no tag that counts: the text is the answer, unchanged
        reasoning, answer = closed.groups()  # only a closing tag: all before it is reasoning
    return reasoning.strip() or None, answer.strip()


@settings(max_examples=500)
@given(tagged_text)
def test_any_text_splits_as_documented(text: str) -> None:
    assert split_reasoning(text) == _reference(text)


@settings(max_examples=300)
@given(tagged_text, tagged_text)
def test_any_block_round_trips(reasoning: str, answer: str) -> None:
    assume("</think>" not in reasoning)
    expected = (reasoning.strip() or None, answer.strip())
    assert split_reasoning(f"<think>{reasoning}</think>{answer}") == expected
    assert split_reasoning(f"  \n<think>{reasoning}</think>{answer}") == expected
    if "<think>" not in reasoning:  # the template opened the block: only the closing tag
        assert split_reasoning(f"{reasoning}</think>{answer}") == expected
