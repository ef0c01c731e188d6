from typing import Literal

ReasoningEffort = Literal["high", "low", "medium"]

REASONING_EFFORT_VALUES: set[ReasoningEffort] = {
    "high",
    "low",
    "medium",
}


def check_reasoning_effort(value: str) -> ReasoningEffort:
    if value in REASONING_EFFORT_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {REASONING_EFFORT_VALUES!r}")
