"""Content parts for chat messages: text, and images from files, bytes or URLs.

```python
messages = [{"role": "user", "content": [text_part("What is this?"), image_part("cat.jpg")]}]
```

Local files and bytes become `data:` URLs (base64). The service accepts PNG, JPEG, GIF
and WEBP; the type is read from the file's first bytes, then from its extension.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Any, Literal

from wandb_inference._exceptions import InvalidRequestError

__all__ = ["MAX_IMAGE_BYTES", "image_part", "text_part"]

MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""The largest image `image_part` accepts, in bytes before base64 (20 MiB).

W&B (vLLM) and OpenAI-compatible servers cap request bodies and images around 20 MB;
base64 makes the request a third larger again. Pass `max_bytes=` to change it."""

ImageDetail = Literal["auto", "low", "high"]

_SUPPORTED = ("image/png", "image/jpeg", "image/gif", "image/webp")
_EXTENSIONS = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".jpe": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}
_URL_SCHEME = r"^([a-zA-Z][a-zA-Z0-9+.-]*):"
_DATA_URL = r"(?i)^data:(image/[a-zA-Z0-9.+-]+)(;[^,]*)?,"


def text_part(text: str) -> dict[str, Any]:
    """A text content part: `{"type": "text", "text": text}`.

    Args:
        text: the text.

    Returns:
        The part, to put in a user message's `content` list.

    Raises:
        InvalidRequestError: `text` is not a str.
    """
    if not isinstance(text, str):
        raise InvalidRequestError(f"text_part() needs a str, got {type(text).__name__}")
    return {"type": "text", "text": text}


def image_part(
    source: str | os.PathLike[str] | bytes | bytearray | memoryview,
    *,
    detail: ImageDetail | None = None,
    media_type: str | None = None,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> dict[str, Any]:
    """An `image_url` content part from a local file, raw bytes, or a URL.

    Args:
        source: a path (str or `pathlib.Path`) to read; the image's bytes; or an
            `http(s)://` or `data:image/...` URL, passed through unchanged.
        detail: `"auto"`, `"low"` or `"high"`; left out of the part when None.
        media_type: the `image/...` type of a file or bytes, when the SDK cannot tell it
            from the first bytes or the extension (or to override it).
        max_bytes: the largest image accepted, in bytes before base64; defaults to
            `MAX_IMAGE_BYTES` (20 MiB).

    Returns:
        `{"type": "image_url", "image_url": {"url": ..., "detail": ...}}`.

    Raises:
        InvalidRequestError: the file is missing or not a file, the bytes are empty,
            the type is not an image type the service accepts, the image is larger than
            `max_bytes`, the URL's scheme is not http, https or data, or `detail` is not
            one of the three values.
    """
    if detail is not None and detail not in ("auto", "low", "high"):
        raise InvalidRequestError(f"detail must be 'auto', 'low' or 'high', got {detail!r}")
    if media_type is not None and (not isinstance(media_type, str) or not media_type.lower().startswith("image/")):
        raise InvalidRequestError(f"media_type must be an 'image/...' type, got {media_type!r}")
    if isinstance(source, bytes | bytearray | memoryview):
        url = _data_url(bytes(source), media_type, None, max_bytes, "the image bytes")
    elif isinstance(source, str) and source[:8].lower().startswith(("http://", "https://", "data:")):
        url = _checked_url(source, media_type, max_bytes)
    elif isinstance(source, str) and _is_other_url(source):
        scheme = source.split(":", 1)[0]
        raise InvalidRequestError(
            f"unsupported image URL scheme {scheme!r}: pass a local path, bytes, or an http(s):// or data:image/... URL"
        )
    elif isinstance(source, str | os.PathLike):
        path = Path(source).expanduser()
        url = _data_url(_read(path, max_bytes), media_type, path.suffix, max_bytes, str(path))
    else:
        raise InvalidRequestError(
            f"image_part() takes a path, bytes, or an http(s)/data URL, not {type(source).__name__}"
        )
    image_url: dict[str, Any] = {"url": url}
    if detail is not None:
        image_url["detail"] = detail
    return {"type": "image_url", "image_url": image_url}


def _is_other_url(source: str) -> bool:
    """`ftp://...`, `file:///...`: a scheme, and no local file of that name."""
    if not re.match(_URL_SCHEME, source):
        return False
    # `C:\pics\cat.png` and `C:/pics/cat.png` look like a URL scheme; they are paths.
    if len(source) >= 3 and source[1] == ":" and source[2] in "\\/":
        return False
    return not Path(source).exists()


def _checked_url(url: str, media_type: str | None, max_bytes: int) -> str:
    if media_type is not None:
        raise InvalidRequestError("media_type applies to files and bytes; a URL carries its own type")
    if not url[:5].lower().startswith("data:"):
        return url
    match = re.match(_DATA_URL, url)
    if match is None:
        raise InvalidRequestError(
            f"a data URL for an image must look like 'data:image/png;base64,...'; got {url[:40]!r}"
        )
    declared = match.group(1).lower()
    if declared not in _SUPPORTED:
        raise InvalidRequestError(
            f"the data URL holds {declared}, which the service does not accept: send PNG, JPEG, GIF or WEBP"
        )
    payload = len(url) - match.end()
    if payload * 3 // 4 > max_bytes:
        raise InvalidRequestError(_too_big("the data URL's image", payload * 3 // 4, max_bytes))
    return url


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InvalidRequestError(f"image file not found: {str(path)!r}") from None
    except OSError as exc:
        raise InvalidRequestError(f"cannot read image file {str(path)!r}: {exc}") from None
    if not path.is_file():
        raise InvalidRequestError(f"not a file: {str(path)!r} (image_part() needs an image file)")
    if size > max_bytes:  # refuse before reading a huge file into memory
        raise InvalidRequestError(_too_big(repr(str(path)), size, max_bytes))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidRequestError(f"cannot read image file {str(path)!r}: {exc}") from None


def _sniff(data: bytes) -> str | None:
    """The media type the first bytes announce (images, and a few common non-images)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"BM"):
        return "image/bmp"
    if data.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in (b"avif", b"avis"):
            return "image/avif"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
            return "image/heic"
    if data.startswith(b"%PDF"):
        return "application/pdf"
    if data.lstrip()[:5].lower() in (b"<svg ", b"<?xml"):
        return "image/svg+xml"
    return None


def _data_url(data: bytes, media_type: str | None, suffix: str | None, max_bytes: int, what: str) -> str:
    if not data:
        raise InvalidRequestError(f"{what} is empty: no image to send")
    if len(data) > max_bytes:
        raise InvalidRequestError(_too_big(what, len(data), max_bytes))
    if media_type is None:
        media_type = _sniff(data) or _EXTENSIONS.get((suffix or "").lower())
        if media_type is None:
            hint = f" (extension {suffix!r})" if suffix else ""
            raise InvalidRequestError(
                f"cannot tell the image type of {what}{hint}: the service accepts PNG, "
                "JPEG, GIF and WEBP; pass media_type='image/...' if it is one of them"
            )
        if media_type not in _SUPPORTED:
            raise InvalidRequestError(
                f"{what} is {media_type}, which the service does not accept: send PNG, "
                "JPEG, GIF or WEBP (convert it first), or pass media_type= to send it anyway"
            )
    encoded = base64.b64encode(data).decode("ascii")
    return f"data:{media_type.lower()};base64,{encoded}"


def _too_big(what: str, size: int, max_bytes: int) -> str:
    return (
        f"{what} is {_size(size)}, over the {_size(max_bytes)} image limit: resize or "
        "recompress it (or pass max_bytes= if your server allows more)"
    )


def _size(n: int) -> str:
    return f"{n / 1_048_576:.1f} MiB" if n >= 1_048_576 else f"{n:,} bytes"
