from typing import Literal

FunctionCallMode = Literal["auto", "none"]

FUNCTION_CALL_MODE_VALUES: set[FunctionCallMode] = {
    "auto",
    "none",
}


def check_function_call_mode(value: str) -> FunctionCallMode:
    if value in FUNCTION_CALL_MODE_VALUES:
        return value
    raise TypeError(f"Unexpected value {value!r}. Expected one of {FUNCTION_CALL_MODE_VALUES!r}")
