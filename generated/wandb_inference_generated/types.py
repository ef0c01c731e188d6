"""Contains some shared types for properties.

Custom template (openapi/templates/types.py.jinja): the generator's "unset" is None.
`Unset` is the None type and `UNSET` is None, so the generated code's own tests
(`isinstance(value, Unset)`, `value is not UNSET`) become `is None`: an optional field
absent from a reply reads as None, a type checker reads `str | Unset` as `str | None`,
and `to_dict()` leaves out every optional field that is None (JSON null and absent
mean the same to the API). A sentinel object would leak into every result type.
"""

from collections.abc import Mapping, MutableMapping
from http import HTTPStatus
from types import NoneType
from typing import IO, BinaryIO, Generic, TypeAlias, TypeVar

from attrs import define

Unset: TypeAlias = NoneType  # type: ignore[nonetype-type]
UNSET: Unset = None

# The types that `httpx.Client(files=)` can accept, copied from that library.
FileContent = IO[bytes] | bytes | str
FileTypes = (
    # (filename, file (or bytes), content_type)
    tuple[str | None, FileContent, str | None]
    # (filename, file (or bytes), content_type, headers)
    | tuple[str | None, FileContent, str | None, Mapping[str, str]]
)
RequestFiles = list[tuple[str, FileTypes]]


@define
class File:
    """Contains information for file uploads"""

    payload: BinaryIO
    file_name: str | None = None
    mime_type: str | None = None

    def to_tuple(self) -> FileTypes:
        """Return a tuple representation that httpx will accept for multipart/form-data"""
        return self.file_name, self.payload, self.mime_type


T = TypeVar("T")


@define
class Response(Generic[T]):
    """A response from an endpoint"""

    status_code: HTTPStatus
    content: bytes
    headers: MutableMapping[str, str]
    parsed: T | None


__all__ = ["UNSET", "File", "FileTypes", "RequestFiles", "Response", "Unset"]
