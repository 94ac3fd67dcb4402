"""``keep_alive`` as a caller gives it, checked and put the way Ollama reads it.

Ollama takes a number of seconds (negative: keep the model loaded for good, 0: unload at once)
or a Go duration string such as ``"5m"``, ``"1h30m"`` or ``"-1m"``; a string without a unit
(``"300"``) is a 400 from Ollama, so a numeric string is sent as the number it spells.
"""

from __future__ import annotations

import math
import re

from ..errors import InputError

_GO_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))+$")
_NUMBER = re.compile(r"^[-+]?\d+$")

KEEP_ALIVE_HELP = (
    "How long Ollama keeps the model loaded afterwards: a duration such as '10m' or '2h', seconds "
    "as a number, -1 to keep it loaded until it is unloaded, 0 to unload it right after."
)


def check_keep_alive(value: str | int | float) -> str | int:
    """``value`` as Ollama should receive it; ``InputError`` saying what is accepted otherwise."""
    if isinstance(value, bool):
        raise InputError(f"keep_alive {value!r} is not a duration. {KEEP_ALIVE_HELP}")
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise InputError(f"keep_alive {value!r} is not a whole number of seconds. {KEEP_ALIVE_HELP}")
        value = int(value)
    if isinstance(value, int):
        return value
    text = value.strip()
    if _NUMBER.match(text):
        return int(text)
    if text == "0" or (len(text) <= 40 and _GO_DURATION.match(text)):
        return text
    shown = text if len(text) <= 40 else text[:37] + "..."
    raise InputError(f"keep_alive {shown!r} is not a duration. {KEEP_ALIVE_HELP}")
