from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="ChatTemplateKwargs")


@_attrs_define
class ChatTemplateKwargs:
    """Passed to the model's chat template, e.g. `{"enable_thinking": false}`.

    Attributes:
        enable_thinking (bool | Unset):
    """

    enable_thinking: bool | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        enable_thinking = self.enable_thinking

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if enable_thinking is not UNSET:
            field_dict["enable_thinking"] = enable_thinking

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        enable_thinking = d.pop("enable_thinking", UNSET)

        chat_template_kwargs = cls(
            enable_thinking=enable_thinking,
        )

        chat_template_kwargs.additional_properties = d
        return chat_template_kwargs

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
