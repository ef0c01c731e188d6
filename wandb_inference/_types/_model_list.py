"""`Model` and `ModelList`: the typed reply of `models.list()`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Self

import attrs
import httpx
from wandb_inference_generated.models.model import Model as _Model
from wandb_inference_generated.models.model_list import ModelList as _ModelList

from ._base import ResponseMixin
from ._parse import parse_model

__all__ = ["Model", "ModelList", "parse_model_list"]

# What a model reads when a server leaves out a field the API documents (some proxies do).
_MODEL_DEFAULTS: dict[str, Any] = {"created": 0, "owned_by": ""}


@attrs.define
class Model(_Model):
    """A served model (`.id`), joined with the catalog when the SDK knows it."""

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        """Build a model; a missing or null `created` reads 0 and `owned_by` reads "".

        Raises:
            KeyError: no `id`.
        """
        if any(src_dict.get(key) is None for key in _MODEL_DEFAULTS):
            src_dict = {**src_dict, **{k: v for k, v in _MODEL_DEFAULTS.items() if src_dict.get(k) is None}}
        return super().from_dict(src_dict)

    @property
    def info(self) -> Any:
        """The catalog row for this id (`ModelInfo`), or None for ids the SDK lacks."""
        from wandb_inference._catalog._lookup import get_model_info

        return get_model_info(self.id)


@attrs.define
class ModelList(ResponseMixin, _ModelList):
    """The model list: iterate it, index it, `len()` it, or read `.ids`."""

    _http_response: httpx.Response | None = attrs.field(default=None, init=False, repr=False, eq=False)

    if TYPE_CHECKING:
        # The items are the facade's `Model` (`from_dict` builds them); a list is
        # invariant, hence the ignore.
        data: list[Model]  # type: ignore[assignment]

    @classmethod
    def from_dict(cls, src_dict: Mapping[str, Any]) -> Self:
        """Build the list with `Model` items.

        Raises:
            KeyError, TypeError: a reply of the wrong shape.
        """
        raw = src_dict["data"]
        if not isinstance(raw, list):
            raise TypeError(f"`data` is a list, not {type(raw).__name__}")
        result = super().from_dict({**src_dict, "data": []})
        result.data = [Model.from_dict(item) for item in raw]
        return result

    def __iter__(self) -> Iterator[Model]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return True  # an empty list is still a valid (non-authoritative) answer

    @property
    def ids(self) -> list[str]:
        """The model ids, in the server's order."""
        return [item.id for item in self.data]

    def _repr_markdown_(self) -> str:
        rows = ["| id | owned_by |", "|---|---|"]
        rows += [f"| {m.id} | {m.owned_by} |" for m in self.data]
        return "\n".join(rows)


def parse_model_list(data: object, response: httpx.Response | None) -> ModelList:
    """Build a `ModelList` whose items are the facade's `Model`.

    Raises:
        APIResponseValidationError: a reply of the wrong shape.
    """
    return parse_model(ModelList, data, response)
