"""What a chat request may carry and how Ollama reads it: ``format`` (``"json"`` or a JSON Schema,
answered with ``schema_instance``), ``messages[].images`` (Go's base64), ``keep_alive`` (Go durations)
and ``think`` levels."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

_DEFAULT_KEEP_ALIVE = 300.0
"""Seconds a model stays loaded after a request that sends no ``keep_alive`` (Ollama's 5m)."""
_FOREVER = (2**63 - 1) / 1e9
"""A negative ``keep_alive``: Go's largest time.Duration, about 292 years."""
_THINK_LEVELS = ("high", "medium", "low")
_FORMAT_ERROR = 'invalid format: expected "json" or a valid JSON schema'


def schema_instance(schema: Any, root: Any = None, depth: int = 0) -> Any:
    """A deterministic instance of a JSON Schema, as a model constrained by it might write:
    ``enum`` -> its first value, ``const`` -> it, object -> every property (and every ``required``
    name), string -> "text", integer -> 1, number -> 1.5 (both moved into ``minimum``/``maximum``),
    boolean -> true, null -> null, array -> ``max(1, minItems)`` items; ``anyOf``/``oneOf``/``allOf``
    -> the first choice; local ``$ref`` (``#/$defs/X``) followed."""
    root = schema if root is None else root
    if not isinstance(schema, dict) or depth > 32:
        return "text"
    if "$ref" in schema and isinstance(schema["$ref"], str) and schema["$ref"].startswith("#"):
        target: Any = root
        for part in schema["$ref"][1:].split("/"):
            if part:
                target = (
                    target.get(part.replace("~1", "/").replace("~0", "~"))
                    if isinstance(target, dict)
                    else None
                )
        return schema_instance(target, root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        choices = schema.get(key)
        if isinstance(choices, list) and choices:
            return schema_instance(choices[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
    if kind == "object":
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        value = {name: schema_instance(sub, root, depth + 1) for name, sub in properties.items()}
        required = schema.get("required")
        for name in required if isinstance(required, list) else []:
            if isinstance(name, str) and name not in value:
                value[name] = "text"
        return value
    if kind == "array":
        low = schema.get("minItems")
        count = max(1, low) if isinstance(low, int) else 1
        return [schema_instance(schema.get("items"), root, depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        number: float = 1 if kind == "integer" else 1.5
        low, high = schema.get("minimum"), schema.get("maximum")
        if isinstance(low, (int, float)) and number < low:
            number = math.ceil(low) if kind == "integer" else low
        if isinstance(high, (int, float)) and number > high:
            number = math.floor(high) if kind == "integer" else high
        return number
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "text"


def _format_reply(fmt: Any, echo: str) -> str:
    """The JSON text a model writes under ``format``: ``{"answer": echo}`` for "json", an
    instance of the schema otherwise (spaces after separators, so that it streams in pieces)."""
    value = {"answer": echo} if fmt == "json" else schema_instance(fmt)
    return json.dumps(value, ensure_ascii=False)


_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def go_base64_error(text: str) -> int | None:
    """Where Go's ``base64.StdEncoding.Decode`` (which ``encoding/json`` uses for ``[]byte``, so
    for ``images``) fails on ``text``: the N of ``illegal base64 data at input byte N``, or None if
    it decodes. Padding is required, CR and LF are skipped, the bits after the last byte are not
    checked (the encoding is not ``Strict``)."""
    src = text.encode()
    si = 0
    while si < len(src):
        j = 0
        while j < 4:
            if si == len(src):
                if j == 0:
                    return None
                return si - j  # padding is required, a lone last character never decodes
            char = src[si]
            si += 1
            if char in _B64_ALPHABET:
                j += 1
                continue
            if char in b"\r\n":
                continue
            if char != ord("=") or j < 2:
                return si - 1
            if j == 2:  # "==" expected, the first "=" is consumed
                while si < len(src) and src[si] in b"\r\n":
                    si += 1
                if si == len(src):
                    return len(src)
                if src[si] != ord("="):
                    return si - 1
                si += 1
            while si < len(src) and src[si] in b"\r\n":
                si += 1
            return si if si < len(src) else None
    return None


def _go_kind(value: Any) -> str:
    """The JSON kind Go names in an unmarshal error."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else "null"


def _check_images(messages: Sequence[dict[str, Any]]) -> str | None:
    """Go's error binding ``messages[].images`` (a list of base64 strings), or None."""
    for message in messages:
        images = message.get("images")
        if images is None:
            continue
        if not isinstance(images, list):
            return (
                f"json: cannot unmarshal {_go_kind(images)} into Go struct field "
                "Message.messages.images of type []api.ImageData"
            )
        for image in images:
            if image is None:
                continue
            if not isinstance(image, str):
                return (
                    f"json: cannot unmarshal {_go_kind(image)} into Go struct field "
                    "Message.messages.images of type api.ImageData"
                )
            at = go_base64_error(image)
            if at is not None:
                return f"illegal base64 data at input byte {at}"
    return None


_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_DURATION_PART = re.compile(r"([0-9]*)(?:\.([0-9]*))?([^0-9.]*)")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string (``time.ParseDuration``): "5m", "1h30m", "-1s", "0".

    Raises ValueError with Go's own message for anything Go rejects (``"10"`` lacks a unit)."""
    quoted = json.dumps(text, ensure_ascii=False)
    rest, sign = text, 1.0
    if rest[:1] in ("-", "+"):
        sign = -1.0 if rest[0] == "-" else 1.0
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    while rest:
        match = _GO_DURATION_PART.match(rest)
        assert match is not None  # every group may be empty
        whole, fraction, unit = match.groups()
        if not whole and not fraction:
            raise ValueError(f"time: invalid duration {quoted}")
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _GO_UNITS:
            raise ValueError(
                f"time: unknown unit {json.dumps(unit, ensure_ascii=False)} in duration {quoted}"
            )
        total += float(f"{whole or 0}.{fraction or 0}") * _GO_UNITS[unit]
        rest = rest[match.end() :]
    return sign * total


def keep_alive_seconds(value: Any) -> float | str:
    """How long a chat request keeps its model loaded afterwards, as Ollama's ``api.Duration``
    reads ``keep_alive``: absent or null = 5 minutes, a number of seconds or a Go duration
    string, negative = forever. A value Ollama rejects gives its error text (a str) instead."""
    if value is None:
        return _DEFAULT_KEEP_ALIVE
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        go_type = {bool: "bool", list: "[]interface {}", dict: "map[string]interface {}"}
        return f"Unsupported type: '{go_type.get(type(value), type(value).__name__)}'"
    if isinstance(value, str):
        try:
            seconds = parse_go_duration(value)
        except ValueError as exc:
            return str(exc)
    else:
        seconds = float(value)
    return _FOREVER if seconds < 0 else seconds
