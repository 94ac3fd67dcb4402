"""``compact``: a tool's ``outputSchema`` with its models inlined, cheaper for a client to check.

A client validates every ``structuredContent`` against the tool's ``outputSchema`` (the Python
SDK's ``Client.call_tool`` does, with ``jsonschema``). pydantic writes each nested model as a
``$ref`` into ``$defs``, and every ``$ref`` is a lookup through the ``referencing`` registry on
every check: inlining them took ``ChatResult``'s check from 305 to 257 us. A schema without
references is also one that a client which does not resolve them reads whole.

Nullable fields stay ``anyOf: [X, {"type": "null"}]``. ``"type": ["integer", "null"]`` would be
checked in half the time, but the MCP Inspector's ``--strict`` lint flags it: a host that maps tool
schemas onto a single-``type`` dialect (Gemini's function declarations) may reject the tool.

Only an exact equivalent is written, so every document is valid under the result exactly when it
was valid under the original: a ``$ref`` to ``#/$defs/Name`` becomes that definition, unless the
definition refers to itself (directly or not: it stays a ``$ref``, and ``$defs`` keeps what is
still referred to) or the ``$ref`` has a sibling that is not an annotation (``additionalProperties``
beside ``properties`` would mean something else in one object). Where the ``$ref`` node and the
definition both carry an annotation (``title``, ``description``, ``default``), the node's own wins:
it describes the field, the definition the type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly"}
)

_DEFS = "#/$defs/"


def compact(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` rewritten as the module describes; ``schema`` itself is left as it was."""
    defs: Mapping[str, Any] = schema.get("$defs") or {}
    kept: set[str] = set()
    out: dict[str, Any] = _node({k: v for k, v in schema.items() if k != "$defs"}, defs, (), kept)
    if kept:
        # What is still referred to (a self-referring definition), and what those refer to.
        closure: dict[str, Any] = {}
        todo = sorted(kept)
        while todo:
            name = todo.pop()
            if name in closure:
                continue
            inner: set[str] = set()
            closure[name] = _node(defs[name], defs, (name,), inner)
            todo.extend(sorted(inner - closure.keys()))
        out["$defs"] = closure
    return out


_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "dependentSchemas", "$defs", "definitions"})
"""Keywords whose value maps names to subschemas."""

_SCHEMA_LISTS = frozenset({"anyOf", "allOf", "oneOf", "prefixItems"})
"""Keywords whose value is a list of subschemas."""

_SCHEMA_ONE = frozenset(
    {
        "items",
        "additionalItems",
        "additionalProperties",
        "unevaluatedItems",
        "unevaluatedProperties",
        "propertyNames",
        "contains",
        "not",
        "if",
        "then",
        "else",
    }
)
"""Keywords whose value is one subschema. Everything else (``enum``, ``default``, ...) is data."""


def _subschemas(node: dict[str, Any]) -> Iterator[Any]:
    """``node``'s subschemas, in the places ``_children`` visits."""
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            yield from value.values()
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            yield from value
        elif key in _SCHEMA_ONE:
            yield value


def _children(node: dict[str, Any], visit: Callable[[Any], Any]) -> dict[str, Any]:
    """``node`` with ``visit`` applied to each of its subschemas, and its data left alone."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: visit(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [visit(sub) for sub in value]
        elif key in _SCHEMA_ONE:
            out[key] = visit(value)
        else:
            out[key] = value
    return out


def _node(node: Any, defs: Mapping[str, Any], inside: tuple[str, ...], kept: set[str]) -> Any:
    if not isinstance(node, dict):
        return node

    def visit(sub: Any) -> Any:
        return _node(sub, defs, inside, kept)

    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS) and ref[len(_DEFS) :] in defs:
        name = ref[len(_DEFS) :]
        siblings = _children({k: v for k, v in node.items() if k != "$ref"}, visit)
        if name in inside or _refers_to(defs[name], name, defs, set()) or not set(siblings) <= _ANNOTATIONS:
            kept.add(name)
            return {"$ref": ref, **siblings}
        target = _node(defs[name], defs, (*inside, name), kept)
        return {**target, **siblings} if isinstance(target, dict) else target
    return _children(node, visit)


def _refers_to(node: Any, name: str, defs: Mapping[str, Any], seen: set[str]) -> bool:
    """Whether ``node`` refers to ``#/$defs/name``, directly or through other definitions."""
    if not isinstance(node, dict):
        return False
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS):
        target = ref[len(_DEFS) :]
        if target == name:
            return True
        if target in defs and target not in seen:
            seen.add(target)
            if _refers_to(defs[target], name, defs, seen):
                return True
    return any(_refers_to(sub, name, defs, seen) for sub in _subschemas(node))
