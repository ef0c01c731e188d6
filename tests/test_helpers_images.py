"""`image_part` / `text_part`: real files, bytes and URLs, and every refusal."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

import wandb_inference as wi
from wandb_inference._helpers import MAX_IMAGE_BYTES, image_part, text_part
from wandb_inference._request import build_chat_body

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00;"
GIF87 = b"GIF87a\x01\x00\x01\x00\x00\x00\x00;"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"
HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"
AVIF = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1"
BMP = b"BM\x3a\x00\x00\x00\x00\x00\x00\x00\x36\x00\x00\x00"
TIFF = b"II*\x00\x08\x00\x00\x00"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
UNKNOWN = b"\x00\x01\x02\x03 no magic here"
MP4 = b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00"  # an ftyp box, but not an image brand


def _decode(part: dict[str, object]) -> tuple[str, bytes]:
    image_url = part["image_url"]
    assert isinstance(image_url, dict)
    url = image_url["url"]
    assert isinstance(url, str)
    header, _, payload = url.partition(",")
    assert header.startswith("data:") and header.endswith(";base64")
    return header[5:-7], base64.b64decode(payload, validate=True)


@pytest.mark.parametrize(
    ("data", "media_type"),
    [(PNG, "image/png"), (JPEG, "image/jpeg"), (GIF, "image/gif"), (GIF87, "image/gif"), (WEBP, "image/webp")],
)
def test_files_are_read_by_magic_bytes_whatever_their_extension(tmp_path: Path, data: bytes, media_type: str) -> None:
    path = tmp_path / "picture.bin"  # the extension says nothing, or lies below
    path.write_bytes(data)
    part = image_part(path)
    assert part["type"] == "image_url"
    assert part["image_url"] == {"url": part["image_url"]["url"]}  # no detail unless asked
    assert _decode(part) == (media_type, data)
    liar = tmp_path / "liar.jpg"
    liar.write_bytes(data)
    assert _decode(image_part(str(liar)))[0] == media_type


@pytest.mark.parametrize(
    ("suffix", "media_type"),
    [
        (".png", "image/png"),
        (".JPG", "image/jpeg"),
        (".jpeg", "image/jpeg"),
        (".gif", "image/gif"),
        (".webp", "image/webp"),
    ],
)
def test_extension_is_the_fallback_when_magic_is_unknown(tmp_path: Path, suffix: str, media_type: str) -> None:
    for data in (UNKNOWN, MP4):
        path = tmp_path / f"odd{suffix}"
        path.write_bytes(data)
        assert _decode(image_part(path)) == (media_type, data)


def test_str_path_and_home_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "cat.png").write_bytes(PNG)
    assert _decode(image_part("~/cat.png")) == ("image/png", PNG)
    assert image_part(str(tmp_path / "cat.png")) == image_part(tmp_path / "cat.png")


def test_bytes_bytearray_and_memoryview() -> None:
    for source in (JPEG, bytearray(JPEG), memoryview(JPEG)):
        assert _decode(image_part(source)) == ("image/jpeg", JPEG)


def test_detail_is_passed_and_checked() -> None:
    for detail in ("auto", "low", "high"):
        assert image_part(PNG, detail=detail)["image_url"]["detail"] == detail
    with pytest.raises(wi.InvalidRequestError, match="detail must be"):
        image_part(PNG, detail="ultra")  # type: ignore[arg-type]


def test_media_type_overrides_and_unlocks_other_image_types(tmp_path: Path) -> None:
    assert _decode(image_part(UNKNOWN, media_type="image/png")) == ("image/png", UNKNOWN)
    assert _decode(image_part(BMP, media_type="image/bmp")) == ("image/bmp", BMP)
    assert _decode(image_part(PNG, media_type="IMAGE/PNG"))[0] == "image/png"
    with pytest.raises(wi.InvalidRequestError, match=r"must be an 'image/\.\.\.' type"):
        image_part(PNG, media_type="text/plain")


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (PDF, "application/pdf"),
        (HEIC, "image/heic"),
        (AVIF, "image/avif"),
        (BMP, "image/bmp"),
        (TIFF, "image/tiff"),
        (SVG, "image/svg\\+xml"),
    ],
)
def test_unsupported_types_are_refused_even_with_an_image_extension(tmp_path: Path, data: bytes, kind: str) -> None:
    path = tmp_path / "fake.png"
    path.write_bytes(data)
    with pytest.raises(wi.InvalidRequestError, match=f"is {kind}, which the service does not accept"):
        image_part(path)
    with pytest.raises(wi.InvalidRequestError, match="PNG, JPEG, GIF or WEBP"):
        image_part(data)


def test_unknown_type_without_extension_asks_for_media_type(tmp_path: Path) -> None:
    path = tmp_path / "blob.dat"
    path.write_bytes(UNKNOWN)
    with pytest.raises(wi.InvalidRequestError, match=r"cannot tell the image type .*'\.dat'.*media_type="):
        image_part(path)
    with pytest.raises(wi.InvalidRequestError, match="cannot tell the image type of the image bytes"):
        image_part(UNKNOWN)


def test_missing_file_directory_and_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(wi.InvalidRequestError, match=r"image file not found: .*nope\.png"):
        image_part(tmp_path / "nope.png")
    with pytest.raises(wi.InvalidRequestError, match="not a file"):
        image_part(tmp_path)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(wi.InvalidRequestError, match="empty"):
        image_part(empty)
    with pytest.raises(wi.InvalidRequestError, match="the image bytes is empty"):
        image_part(b"")
    with pytest.raises(wi.InvalidRequestError, match="takes a path, bytes"):
        image_part(42)  # type: ignore[arg-type]


def test_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "cat.png"
    path.write_bytes(PNG)

    def denied(self: Path, *args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(wi.InvalidRequestError, match=r"cannot read image file .*Permission denied"):
        image_part(path)
    monkeypatch.setattr(Path, "stat", denied)
    with pytest.raises(wi.InvalidRequestError, match=r"cannot read image file .*Permission denied"):
        image_part(path)


def test_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MAX_IMAGE_BYTES == 20 * 1024 * 1024
    data = PNG + b"\x00" * (1000 - len(PNG))
    assert _decode(image_part(data, max_bytes=1000))[1] == data  # exactly at the limit
    with pytest.raises(wi.InvalidRequestError, match="is 1,001 bytes, over the 1,000 bytes image limit"):
        image_part(data + b"\x00", max_bytes=1000)
    huge = tmp_path / "huge.png"
    with huge.open("wb") as f:  # sparse: refused from its size, never read
        f.truncate(MAX_IMAGE_BYTES + 1)

    def never(self: Path) -> bytes:
        raise AssertionError("a file over the limit must not be read into memory")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "read_bytes", never)
        with pytest.raises(wi.InvalidRequestError, match=r"is 20\.0 MiB, over the 20\.0 MiB image limit"):
            image_part(huge)
    small = tmp_path / "small.png"
    small.write_bytes(data)
    with pytest.raises(wi.InvalidRequestError, match="image limit"):
        image_part(small, max_bytes=999)


def test_http_urls_pass_through() -> None:
    for url in ("https://example.com/cat.png?x=1", "http://example.com/c", "HTTPS://EXAMPLE.COM/C.JPG"):
        assert image_part(url) == {"type": "image_url", "image_url": {"url": url}}
    assert image_part("https://example.com/c.png", detail="low")["image_url"] == {
        "url": "https://example.com/c.png",
        "detail": "low",
    }
    with pytest.raises(wi.InvalidRequestError, match="media_type applies to files and bytes"):
        image_part("https://example.com/c.png", media_type="image/png")


def test_data_urls_pass_through_checked() -> None:
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert image_part(url)["image_url"]["url"] == url
    assert image_part(url.replace("data:image/png", "DATA:image/PNG"))["image_url"]["url"].startswith("DATA:")
    with pytest.raises(wi.InvalidRequestError, match="must look like 'data:image/png;base64"):
        image_part("data:text/plain;base64,aGk=")
    with pytest.raises(wi.InvalidRequestError, match="holds image/bmp"):
        image_part("data:image/bmp;base64,Qk0=")
    big = "data:image/png;base64," + "A" * 2000
    with pytest.raises(wi.InvalidRequestError, match="image limit"):
        image_part(big, max_bytes=1000)
    assert image_part(big, max_bytes=1500)["image_url"]["url"] == big


def test_other_url_schemes_are_refused_but_odd_paths_are_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for url in ("ftp://example.com/cat.png", "file:///tmp/cat.png", "s3://bucket/cat.png"):
        with pytest.raises(wi.InvalidRequestError, match="unsupported image URL scheme"):
            image_part(url)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shot:1.png").write_bytes(PNG)  # a file whose name looks like a scheme
    assert _decode(image_part("shot:1.png")) == ("image/png", PNG)
    with pytest.raises(wi.InvalidRequestError, match="image file not found"):
        image_part("C:\\pictures\\cat.png")  # a Windows drive is a path, not a scheme


def test_text_part() -> None:
    assert text_part("hi") == {"type": "text", "text": "hi"}
    assert text_part("") == {"type": "text", "text": ""}
    with pytest.raises(wi.InvalidRequestError, match="needs a str"):
        text_part(b"hi")  # type: ignore[arg-type]


def test_parts_pass_the_request_validation(tmp_path: Path) -> None:
    path = tmp_path / "cat.webp"
    path.write_bytes(WEBP)
    content = [text_part("What is this?"), image_part(path, detail="high"), image_part("https://x.test/a.gif")]
    body = build_chat_body("m", [{"role": "user", "content": content}], False, {})
    assert body["messages"][0]["content"] == content
