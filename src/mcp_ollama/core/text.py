"""Text from a model is data, not trust: what may reach a host, a terminal or the store."""

from __future__ import annotations

import re

# CSI (ESC [ ... final) and OSC (ESC ] ... BEL or ESC \) sequences, then any other ESC pair.
_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b.?", re.DOTALL)
# C0 controls but tab and newline, DEL, and C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """``text`` without terminal control sequences or lone surrogates (which cannot be UTF-8).

    Tab and newline stay; ``\\r\\n`` becomes ``\\n``; every other control character goes.
    """
    if text.isprintable():  # the common case: nothing to do
        return text
    text = text.replace("\r\n", "\n")
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = _CONTROL.sub("", text)
    return _SURROGATE.sub("\ufffd", text)


def count(number: int, noun: str) -> str:
    """``"1 token"``, ``"2 tokens"``, ``"1,024 tokens"``."""
    return f"{number:,} {noun}" + ("" if number == 1 else "s")


def human_bytes(size: int) -> str:
    """Bytes in decimal units, as Ollama shows them: ``4.7 GB``."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
