"""Lookups over the catalog: by id (and the staging host's ids), by constructor, the
models a listing serves, and the difference between the table and a live `/models`.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from wandb_inference._exceptions import InvalidRequestError

from ._table import CATALOG, ModelInfo

__all__ = [
    "CatalogDiff",
    "all_models",
    "by_constructor",
    "diff_listing",
    "get_model_info",
    "join_listing",
    "staging_id",
]

_BY_ID: dict[str, ModelInfo] = {m.id: m for m in CATALOG}
_BY_CONSTRUCTOR: dict[str, ModelInfo] = {m.constructor: m for m in CATALOG}


def staging_id(model_id: str) -> str:
    """The id the early staging host used for `model_id`.

    Args:
        model_id: a catalog id such as `meta-llama/Llama-3.3-70B-Instruct`.

    Returns:
        `cw_` + the id with `/` replaced by `_` (`cw_meta-llama_Llama-3.3-70B-Instruct`).
    """
    return "cw_" + model_id.replace("/", "_")


_BY_STAGING: dict[str, ModelInfo] = {staging_id(m.id): m for m in CATALOG}
_BY_FOLDED: dict[str, ModelInfo] = {
    **{key.casefold(): m for key, m in _BY_STAGING.items()},
    **{m.id.casefold(): m for m in CATALOG},
}


def get_model_info(model_id: str) -> ModelInfo | None:
    """The catalog row for a model id, or None for ids the catalog lacks.

    Looks up, in order: the exact id, the early staging host's form of it
    (`cw_meta-llama_Llama-3.3-70B-Instruct`), then either of them ignoring case.
    `wandb-artifact:///` LoRA ids and new models give None: they still work everywhere.

    Args:
        model_id: the id as sent or listed.

    Returns:
        The row (whose `id` is the catalog's canonical id), or None.
    """
    info = _BY_ID.get(model_id) or _BY_STAGING.get(model_id)
    if info is not None:
        return info
    return _BY_FOLDED.get(model_id.casefold())


def by_constructor(name: str) -> ModelInfo | None:
    """The catalog row whose per-model constructor is `name` (`"llama_3_3_70b"`), or None.

    Args:
        name: a constructor name as on the clients (`client.llama_3_3_70b()`).

    Returns:
        The row, or None when no row has that constructor.
    """
    return _BY_CONSTRUCTOR.get(name)


def all_models(*, include_retired: bool = True) -> tuple[ModelInfo, ...]:
    """Every catalog row, in catalog order.

    Args:
        include_retired: False leaves out the rows whose stage is `retired`.

    Returns:
        The rows.
    """
    if include_retired:
        return CATALOG
    return tuple(m for m in CATALOG if m.lifecycle.stage != "retired")


def _listed_ids(ids: Iterable[str]) -> list[str]:
    if isinstance(ids, str | bytes):
        raise InvalidRequestError("pass a list of model ids, not a single string")
    out = list(ids)
    for model_id in out:
        if not isinstance(model_id, str):
            raise InvalidRequestError(f"model ids must be strings, got {type(model_id).__name__}")
    return out


def join_listing(ids: Iterable[str]) -> list[ModelInfo]:
    """Join a live `/models` id list with the catalog, in the listed order.

    Each listed id gives one row: the catalog's row for known ids (looked up like
    `get_model_info`, with `id` set to the id as listed, so a staging host's ids stay
    usable), or `ModelInfo.unknown(id)` for ids the catalog lacks.

    Args:
        ids: the `id` of each item of the listing.

    Returns:
        One row per listed id.

    Raises:
        InvalidRequestError: `ids` is a single string, or holds something other than strings.
    """
    rows = []
    for model_id in _listed_ids(ids):
        info = get_model_info(model_id)
        if info is None:
            rows.append(ModelInfo.unknown(model_id))
        elif info.id != model_id:
            rows.append(attrs.evolve(info, id=model_id))
        else:
            rows.append(info)
    return rows


@attrs.frozen(kw_only=True)
class CatalogDiff:
    """How a live `/models` listing differs from the catalog.

    Attributes:
        unknown: listed ids the catalog does not know (new models: add rows).
        missing: catalog ids at stage `ga` the listing lacks (retired? record the date).
        retired_but_listed: listed ids the catalog says are retired.
        empty_listing: the server listed nothing. An empty list is never authoritative
            (the service once briefly returned one), so `missing` is then left empty.
    """

    unknown: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    retired_but_listed: tuple[str, ...] = ()
    empty_listing: bool = False

    @property
    def has_differences(self) -> bool:
        """True when any of the three lists is non-empty."""
        return bool(self.unknown or self.missing or self.retired_but_listed)


def diff_listing(ids: Iterable[str]) -> CatalogDiff:
    """Compare a live `/models` id list with the catalog.

    Ids are matched like `get_model_info` (exact, staging form, any case).

    Args:
        ids: the `id` of each item of the listing.

    Returns:
        The differences, each list in listing or catalog order.

    Raises:
        InvalidRequestError: `ids` is a single string, or holds something other than strings.
    """
    listed = _listed_ids(ids)
    if not listed:
        return CatalogDiff(empty_listing=True)
    unknown: list[str] = []
    retired: list[str] = []
    seen: set[str] = set()
    for model_id in listed:
        info = get_model_info(model_id)
        if info is None:
            if model_id not in unknown:
                unknown.append(model_id)
            continue
        seen.add(info.id)
        if info.lifecycle.stage == "retired" and model_id not in retired:
            retired.append(model_id)
    missing = [m.id for m in CATALOG if m.lifecycle.stage == "ga" and m.id not in seen]
    return CatalogDiff(unknown=tuple(unknown), missing=tuple(missing), retired_but_listed=tuple(retired))
