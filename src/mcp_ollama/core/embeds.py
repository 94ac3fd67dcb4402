"""What one embedding call may carry: inputs are capped per call (count and bytes), so one call
cannot hold an Ollama server, or this process's memory, for long. The ``embed`` tool and the
``mcp-ollama embed`` command both check here."""

from __future__ import annotations

from ..errors import InputError, InputTooLarge

MAX_EMBED_INPUTS = 256
"""Texts one embed call may carry."""
MAX_EMBED_BYTES = 1024 * 1024
"""UTF-8 bytes one embed call may carry, all its texts together."""


def check_inputs(texts: list[str]) -> None:
    """``InputError`` naming the cap for a call with no text, an empty one, too many or too much."""
    if not texts:
        raise InputError("Give at least one text to embed as `input` (a string, or a list of strings).")
    empty = [index for index, text in enumerate(texts) if not text.strip()]
    if empty:
        raise InputError(f"Input {empty[0]} is empty: every text to embed needs some characters.")
    if len(texts) > MAX_EMBED_INPUTS:
        raise InputTooLarge(
            f"{len(texts)} texts is more than one call embeds (at most {MAX_EMBED_INPUTS}); split them "
            "over several calls."
        )
    size = sum(len(text.encode("utf-8", "surrogatepass")) for text in texts)
    if size > MAX_EMBED_BYTES:
        raise InputTooLarge(
            f"The texts hold {size:,} bytes, more than one call embeds (at most {MAX_EMBED_BYTES:,} "
            "bytes of UTF-8); split them over several calls."
        )
