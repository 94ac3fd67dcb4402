"""``core/images.py``: images recognised by their bytes, read from base64, data URIs and paths, and
refused (with their index, never their content) when unusable, too large or too many."""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from pathlib import Path

import pytest

from mcp_ollama.core.images import MAX_IMAGES, read_images, sniff
from mcp_ollama.errors import InputError, InputTooLarge

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR\x00\x00\x00\x01"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00"
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00"
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 "


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    ("data", "mime"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (b"GIF87a" + GIF[6:], "image/gif"),
        (WEBP, "image/webp"),
    ],
)
def test_images_are_recognised_by_their_first_bytes(data: bytes, mime: str) -> None:
    assert sniff(data) == mime
    (image,) = read_images([b64(data)], 1000)
    assert image.note.mime == mime
    assert image.note.size == len(data)
    assert image.note.sha256 == hashlib.sha256(data).hexdigest()
    assert image.base64 == b64(data)


@pytest.mark.parametrize(
    "data", [b"", b"RIFF\x00\x00\x00\x00WAVE", b"%PDF-1.7", b"\x89PNG", b"SECRET-CONTENT"]
)
def test_other_bytes_are_not_images(data: bytes) -> None:
    assert sniff(data) is None


def test_base64_with_line_breaks_and_a_data_uri_are_read(tmp_path: Path) -> None:
    encoded = b64(PNG)
    wrapped = encoded[:8] + "\n" + encoded[8:] + "\n"
    path = tmp_path / "p.png"
    path.write_bytes(PNG)
    images = read_images([wrapped, f"data:image/png;base64,{encoded}", str(path)], 1000)
    assert [i.base64 for i in images] == [encoded] * 3
    assert {i.note for i in images} == {images[0].note}


def test_a_data_uri_is_typed_by_its_bytes_not_its_label() -> None:
    (image,) = read_images([f"data:image/png;base64,{b64(GIF)}"], 1000)
    assert image.note.mime == "image/gif"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("", "images[0] is empty"),
        ("   ", "images[0] is empty"),
        ("pic.png", "relative paths are not accepted"),
        ("data:image/png,rawbytes", "without base64 data"),
        ("data:image/png;base64,@@@@", "not valid base64"),
        (f"data:image/png;base64,{b64(b'SECRET-CONTENT')}", "is not a PNG, JPEG, GIF or WebP image"),
        (b64(b"SECRET-CONTENT"), "relative paths are not accepted"),
    ],
)
def test_unusable_items_are_refused_with_their_index(item: str, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        read_images([b64(PNG), item], 1000)
    text = str(caught.value).replace("images[1]", "images[0]")
    assert expected in text
    assert "SECRET" not in text


def test_every_path_that_is_not_an_image_gets_the_same_answer(tmp_path: Path) -> None:
    secret = tmp_path / "case"
    secret.write_bytes(b"SECRET-CONTENT")
    empty = tmp_path / "case-empty"
    empty.write_bytes(b"")
    directory = tmp_path / "case-dir"
    directory.mkdir()
    candidates = [secret, empty, directory, tmp_path / "case-missing"]
    if hasattr(os, "mkfifo"):  # a FIFO must not hang the server either
        fifo = tmp_path / "case-fifo"
        os.mkfifo(fifo)
        candidates.append(fifo)
    texts = set()
    for path in candidates:
        with pytest.raises(InputError) as caught:
            read_images([str(path)], 1000)
        text = str(caught.value)
        assert "SECRET" not in text and "CONTENT" not in text
        texts.add(text.replace(str(path), "<path>"))
    assert len(texts) == 1, texts


@pytest.mark.skipif(sys.platform == "win32", reason="file modes")
def test_an_unreadable_image_file_gets_the_same_answer(tmp_path: Path) -> None:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root reads anything")
    locked = tmp_path / "locked.png"
    locked.write_bytes(PNG)
    locked.chmod(0)
    missing = tmp_path / "lost.png"
    with pytest.raises(InputError) as unreadable:
        read_images([str(locked)], 1000)
    with pytest.raises(InputError) as absent:
        read_images([str(missing)], 1000)
    assert str(unreadable.value).replace(str(locked), "P") == str(absent.value).replace(str(missing), "P")


def test_images_over_the_limit_are_refused_in_every_form(tmp_path: Path) -> None:
    big = PNG + b"\x00" * 200
    path = tmp_path / "big.png"
    path.write_bytes(big)
    for item in (b64(big), f"data:image/png;base64,{b64(big)}", str(path)):
        with pytest.raises(InputTooLarge, match="100-byte limit"):
            read_images([item], 100)
    assert read_images([str(path)], len(big))[0].note.size == len(big)


def test_at_most_sixteen_images_go_with_one_message() -> None:
    assert len(read_images([b64(PNG)] * MAX_IMAGES, 1000)) == MAX_IMAGES
    with pytest.raises(InputError, match="at most 16"):
        read_images([b64(PNG)] * (MAX_IMAGES + 1), 1000)
