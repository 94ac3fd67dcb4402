"""Decoding an inline image, base64 or a ``data:`` URL, while its bytes are counted against the caps.

``_from_base64`` and ``_from_data_uri`` answer the decoded bytes, and the caller's own text where it
can be sent on as it is. An image is counted at its largest size before it is decoded, so that
nothing far too large is; one over ``max_image_bytes`` is refused with a sentence saying so.
"""

from __future__ import annotations

import base64
import binascii
import re

from ..errors import InputError, InputTooLarge
from .image_files import Counter, sniff

_BASE64 = re.compile(r"[A-Za-z0-9+/\s]+={0,2}\s*")


def _too_large(name: str, max_bytes: int) -> InputTooLarge:
    return InputTooLarge(
        f"{name} is larger than the {max_bytes:,}-byte limit for an image (MCP_OLLAMA_MAX_IMAGE_BYTES). "
        "Send a smaller or more compressed image."
    )


def _inline(name: str, payload: str, max_bytes: int, count: Counter) -> tuple[bytes, str | None] | None:
    """``payload`` decoded, and as it can be sent on (None: to be encoded anew); None if no base64.

    Counted first at its largest size, so that nothing far too large is decoded. The caller's own
    text is sent on when it is plain base64 as Ollama (Go) reads it: whole quanta, padding at the
    end only. It needs no copy then (``split`` and ``join`` return a string without whitespace).
    """
    estimate = len(payload) // 4 * 3  # whitespace included: at least the decoded size
    if estimate > max_bytes + 3:
        raise _too_large(name, max_bytes)
    count.add(estimate)
    clean = "".join(payload.split())
    try:
        data = base64.b64decode(clean, validate=True)
    except (binascii.Error, ValueError):
        count.remove(estimate)
        return None
    count.correct(estimate, len(data))
    if len(data) > max_bytes:
        count.remove(len(data))
        raise _too_large(name, max_bytes)
    plain = len(clean) % 4 == 0 and "=" not in clean[:-2]
    return data, clean if plain else None


def _from_base64(
    name: str, text: str, max_bytes: int, count: Counter
) -> tuple[bytes, str | None] | str | None:
    """The image (as ``_inline``); ``"base64"`` for base64 of something else; None for no base64 at all."""
    if _BASE64.fullmatch(text) is None:
        return None
    found = _inline(name, text, max_bytes, count)
    if found is None:
        return None
    if sniff(found[0]) is None:
        count.remove(len(found[0]))
        return "base64"
    return found


def _from_data_uri(name: str, text: str, max_bytes: int, count: Counter) -> tuple[bytes, str | None]:
    header, comma, payload = text.partition(",")
    if not comma or not header.endswith(";base64"):
        raise InputError(f"{name} is a data: URL without base64 data: use data:image/png;base64,....")
    found = _inline(name, payload, max_bytes, count)
    if found is None:
        raise InputError(f"{name} is a data: URL whose data is not valid base64.")
    return found
