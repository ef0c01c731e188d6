"""`Model` and `ModelList`: the typed reply of `models.list()`."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs
import httpx
from wandb_inference_generated.models.model import Model as _Model
from wandb_inference_generated.models.model_list import ModelList as _ModelList

from ._base import ResponseMixin
from ._parse import parse_model

__all__ = ["Model", "ModelList", "parse_model_list"]


@attrs.define
class Model(_Model):
    """A served model (`.id`), joined with the catalog when the SDK knows it."""

    @property
    def info(self) -> Any:
        """The catalog row for this id (`ModelInfo`), or None for ids the SDK lacks."""
        from wandb_inference._catalog._lookup import get_model_info

        return get_model_info(self.id)


@attrs.define
class ModelList(ResponseMixin, _ModelList):
    """The model list: iterate it, index it, `len()` it, or read `.ids`."""

    _http_response: httpx.Response | None = attrs.field(default=None, init=False, repr=False, eq=False)

    def __iter__(self) -> Iterator[Model]:
        yield from self.data  # type: ignore[misc]  # parse_model_list builds Model items

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
        rows += [f"| {m.id} | {m.owned_by if isinstance(m.owned_by, str) else ''} |" for m in self.data]
        return "\n".join(rows)


def parse_model_list(data: object, response: httpx.Response | None) -> ModelList:
    """Build a `ModelList` whose items are the facade's `Model`."""
    result = parse_model(ModelList, data, response)
    raw = data["data"] if isinstance(data, Mapping) else []
    result.data = [parse_model(Model, item, response) for item in raw]
    return result
