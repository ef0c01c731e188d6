from typing import Literal

ToolChoiceMode = Literal["auto", "none", "required"]

TOOL_CHOICE_MODE_VALUES: set[ToolChoiceMode] = {
    "auto",
    "none",
    "required",
}


def check_tool_choice_mode(value: str) -> ToolChoiceMode:
    if value in TOOL_CHOICE_MODE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {TOOL_CHOICE_MODE_VALUES!r}")
