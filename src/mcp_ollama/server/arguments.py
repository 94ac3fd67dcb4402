"""Tool arguments that do not fit, told in one sentence a person (or a model) can act on.

The SDK reports a bad ``tools/call`` argument as pydantic's own dump ("1 validation error for
chatArguments … errors.pydantic.dev"), and ignores an argument it does not know, so a typo
(``mesage``) surfaces as "message: Field required". ``ArgumentMiddleware`` checks the arguments
first, against the tool's own argument model, and answers a misfit with an ``isError`` result
(the spec's way for a tool's input errors) that names the argument, what was wrong, the
closest accepted name, and the accepted ones. Both protocol eras pass through it.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from mcp.server.context import HandlerResult, ServerRequestContext
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, TextContent
from pydantic import ValidationError

from .request import is_modern

ToolLookup = Callable[[str], Tool | None]


class ArgumentMiddleware:
    """Answers ``tools/call`` with misfitting arguments before the tool runs (see the module docstring)."""

    def __init__(self, lookup: ToolLookup) -> None:
        self._lookup = lookup

    async def __call__(
        self,
        ctx: ServerRequestContext[Any, Any],
        call_next: Callable[[ServerRequestContext[Any, Any]], Awaitable[HandlerResult]],
    ) -> HandlerResult:
        if ctx.request_id is None or ctx.method != "tools/call" or not isinstance(ctx.params, Mapping):
            return await call_next(ctx)
        name = ctx.params.get("name")
        arguments = ctx.params.get("arguments")
        tool = self._lookup(name) if isinstance(name, str) else None
        if tool is None or not (arguments is None or isinstance(arguments, Mapping)):
            return await call_next(ctx)
        if ctx.params.get("task") is not None:  # a 2025-11-25 task: its failure is the task's (same text)
            return await call_next(ctx)
        problem = argument_problem(tool, dict(arguments or {}))
        if problem is None:
            return await call_next(ctx)
        result = CallToolResult(content=[TextContent(type="text", text=problem)], is_error=True)
        dumped = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        if not is_modern(ctx):  # the handshake era has no resultType
            dumped.pop("resultType", None)
        return dumped


def argument_problem(tool: Tool, arguments: dict[str, Any]) -> str | None:
    """One sentence per misfit in ``arguments`` for ``tool``, or None when they fit."""
    schema = tool.parameters
    accepted = list(_properties(schema, schema))
    problems = [_unknown("argument", key, accepted) for key in arguments if key not in accepted]
    if not problems:
        try:
            tool.fn_metadata.validate_arguments(arguments)
        except ValidationError as exc:
            problems = _describe(exc, schema)
    if not problems:
        return None
    if not accepted:
        return f"Invalid arguments for {tool.name}: {' '.join(problems)} It takes no arguments."
    required = [name for name in schema.get("required", []) if isinstance(name, str)]
    names = ", ".join(f"{n} (required)" if n in required else n for n in accepted)
    return f"Invalid arguments for {tool.name}: {' '.join(problems)} It takes: {names}."


def _unknown(kind: str, key: str, accepted: Sequence[str]) -> str:
    guess = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
    if guess:
        return f"unknown {kind} '{_clip(key)}' — did you mean '{guess[0]}'?"
    if not accepted:
        return f"unknown {kind} '{_clip(key)}'."
    return f"unknown {kind} '{_clip(key)}' (accepted: {', '.join(accepted)})."


def _describe(exc: ValidationError, root: Mapping[str, Any]) -> list[str]:
    """Sentences for pydantic's errors: one per argument (a union's branches are told once)."""
    told: set[tuple[str | int, ...]] = set()
    sentences: list[str] = []
    for error in exc.errors(include_url=False):
        kind = error["type"]
        if kind == "extra_forbidden":  # the unknown name itself is in no schema: keep it
            loc = (*_data_path(error["loc"][:-1], root), error["loc"][-1])
        else:
            loc = _data_path(error["loc"], root)
        if loc in told:
            continue
        told.add(loc)
        where = ".".join(str(part) for part in loc)
        if kind == "missing":
            sentences.append(f"missing required argument '{where}'.")
        elif kind == "extra_forbidden":
            parent = _sub_schema(root, loc[:-1])
            accepted = list(_properties(parent, root)) if parent else []
            sentences.append(_unknown("option" if len(loc) > 1 else "argument", str(loc[-1]), accepted))
        else:
            expected = _expected(_sub_schema(root, loc), root)
            got = _clip(json.dumps(error.get("input"), default=str))
            reason = f"must be {expected}" if expected else str(error["msg"]).lower()
            sentences.append(f"'{where}' {reason} (got {got}).")
    return sentences


def _data_path(loc: tuple[str | int, ...], root: Mapping[str, Any]) -> tuple[str | int, ...]:
    """``loc`` without pydantic's union-branch tags ('bool', "literal['low']", 'function-after[…]')."""
    path: list[str | int] = []
    for part in loc:
        if isinstance(part, int) or _sub_schema(root, (*path, part)) is not None:
            path.append(part)
    return tuple(path)


def _properties(node: Mapping[str, Any], root: Mapping[str, Any]) -> dict[str, Any]:
    """The properties an object schema (through $ref and anyOf) declares."""
    node = _resolve(node, root)
    found: dict[str, Any] = dict(node.get("properties", {}))
    for branch in node.get("anyOf", []):
        found.update(_resolve(branch, root).get("properties", {}))
    return found


def _sub_schema(root: Mapping[str, Any], loc: Sequence[str | int]) -> Mapping[str, Any] | None:
    """The schema of the value at ``loc`` (through $refs, anyOf and arrays), if it can be found."""
    node: Mapping[str, Any] | None = root
    for part in loc:
        if node is None:
            return None
        node = _resolve(node, root)
        if isinstance(part, int):
            items = [node.get("items")] + [_resolve(b, root).get("items") for b in node.get("anyOf", [])]
            node = next((i for i in items if isinstance(i, Mapping)), None)
            continue
        found = _properties(node, root).get(part)
        node = found if isinstance(found, Mapping) else None
    return _resolve(node, root) if node is not None else None


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        found = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"))
        if isinstance(found, Mapping):
            return found
    return node


_BOUNDS = (("minimum", "at least"), ("maximum", "at most"), ("minLength", "min length"))
_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def _expected(schema: Mapping[str, Any] | None, root: Mapping[str, Any]) -> str:
    """What a value fitting ``schema`` is, in words: "true or false, 'low', 'medium' or 'high'"."""
    if schema is None:
        return ""
    words: list[str] = []
    for branch in (_resolve(b, root) for b in schema.get("anyOf", [schema])):
        if "enum" in branch:
            words += [json.dumps(value) for value in branch["enum"]]
        elif "const" in branch:
            words.append(json.dumps(branch["const"]))
        elif branch.get("type") in _TYPE_WORDS and branch.get("type") != "null":
            word = _TYPE_WORDS[branch["type"]]
            bounds = [
                f"{label} {branch[key]}"
                for key, label in (
                    ("minimum", "at least"),
                    ("maximum", "at most"),
                    ("minLength", "min length"),
                )
                if key in branch
            ]
            words.append(word + (f" ({', '.join(bounds)})" if bounds else ""))
        elif "$ref" in branch or "properties" in branch:
            words.append("an object")
    words = list(dict.fromkeys(words))
    if not words:
        return ""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
