"""``compact``: every tool's ``outputSchema`` accepts exactly what pydantic's did, in a cheaper shape."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema.validators import validator_for
from mcp.server.mcpserver.tools import Tool

from mcp_ollama.config import Settings
from mcp_ollama.server import sdk
from mcp_ollama.server.app import build_server
from mcp_ollama.server.schema_shape import compact

from .conftest import connect

POOL: tuple[Any, ...] = (None, 0, 1, -1, 1.5, "", "x", True, False, [], {}, [1], ["x"], {"k": "v"})
"""Values put in every place of a valid document, and the document's own place."""


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _resolve(root["$defs"][ref.rsplit("/", 1)[1]], root)
    return schema


def sample(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> Any:
    """A document ``schema`` accepts, with every property present (nested objects exercised, a
    self-referring one three levels deep)."""
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [b for b in schema[key] if (_resolve(b, root).get("type") == "null") == (depth > 3)]
            return sample((branches or schema[key])[0], root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        return {name: sample(sub, root, depth + 1) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        items = schema.get("items")
        return [sample(items, root, depth + 1)] if isinstance(items, dict) else []
    return {"string": "s", "integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind or "", {})


def variants(document: Any) -> Iterator[Any]:
    """``document``, then copies with one place (the whole, a value, a list item) replaced or removed."""
    yield document
    yield from POOL
    if isinstance(document, dict):
        for key, value in document.items():
            rest = {k: v for k, v in document.items() if k != key}
            yield rest
            for inner in variants(value):
                yield {**rest, key: inner}
    elif isinstance(document, list):
        for i, value in enumerate(document):
            for inner in variants(value):
                yield [*document[:i], inner, *document[i + 1 :]]


def agree(original: dict[str, Any], compacted: dict[str, Any], documents: Iterator[Any]) -> int:
    before = validator_for(original)(original)
    after = validator_for(compacted)(compacted)
    validator_for(compacted).check_schema(compacted)
    checked = 0
    for document in documents:
        assert before.is_valid(document) == after.is_valid(document), document
        checked += 1
    return checked


def tool_schemas() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(name, pydantic's schema, the published one) for every tool with an output schema."""
    server = build_server(Settings(db_path=":memory:"))
    found = []
    for tool in sdk.tool_manager(server).list_tools():
        if tool.output_schema is not None:
            rebuilt = Tool.from_function(tool.fn, title=tool.title, annotations=tool.annotations)
            original = rebuilt.output_schema
            assert original is not None
            found.append((tool.name, original, tool.output_schema))
    return found


TOOLS = tool_schemas()


def test_every_tool_with_structured_output_is_covered() -> None:
    assert {"chat", "chat_result", "list_models", "pull_model", "running_models", "embed"} <= {
        name for name, _, _ in TOOLS
    }


@pytest.mark.parametrize(("name", "original", "published"), TOOLS, ids=[t[0] for t in TOOLS])
def test_the_published_schema_accepts_exactly_what_pydantics_did(
    name: str, original: dict[str, Any], published: dict[str, Any]
) -> None:
    document = sample(original, original)
    assert validator_for(original)(original).is_valid(document), "the sample itself is valid"
    assert compact(original) == published
    assert agree(original, published, variants(document)) > 50


def test_chats_schema_has_no_ref_and_keeps_its_portable_nullable_spelling() -> None:
    """What a client's validator walks on every chat: inlined models; nullable fields as ``anyOf``
    branches of one ``type`` each (the Inspector's ``--strict`` lint warns on a ``type`` list)."""
    published = next(schema for name, _, schema in TOOLS if name == "chat")
    text = repr(published)
    assert "$ref" not in text and "$defs" not in text and "'type': [" not in text
    usage = published["properties"]["usage"]
    assert usage["anyOf"][0]["properties"]["prompt_tokens"]["anyOf"] == [
        {"type": "integer"},
        {"type": "null"},
    ]
    assert usage["anyOf"][1] == {"type": "null"}
    assert usage["description"] == "Token counts, once the answer is complete."
    # `data` is null in every chat without a format: its null branch is tried first
    assert published["properties"]["data"]["anyOf"][0] == {"type": "null"}


RECURSIVE = {
    "$defs": {
        "Node": {
            "type": "object",
            "properties": {"child": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]}},
        },
        "Leaf": {"type": "object", "properties": {"n": {"type": "integer"}}},
    },
    "type": "object",
    "properties": {"root": {"$ref": "#/$defs/Node"}, "leaf": {"$ref": "#/$defs/Leaf"}},
}
REF_WITH_CONSTRAINT = {
    "$defs": {"S": {"type": "object", "properties": {"n": {"type": "integer"}}}},
    "type": "object",
    "properties": {"s": {"$ref": "#/$defs/S", "additionalProperties": False}},
}
NAMES_THAT_LOOK_LIKE_KEYWORDS = {
    "$defs": {"S": {"type": "string"}},
    "type": "object",
    "properties": {
        "anyOf": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "$ref": {"type": "integer", "default": {"$ref": "#/$defs/S"}},
    },
    "required": ["anyOf"],
}


@pytest.mark.parametrize(
    "schema",
    [RECURSIVE, REF_WITH_CONSTRAINT, NAMES_THAT_LOOK_LIKE_KEYWORDS],
    ids=["recursive", "ref-with-constraint", "names-like-keywords"],
)
def test_what_has_no_exact_equivalent_is_kept(schema: dict[str, Any]) -> None:
    before = copy.deepcopy(schema)
    compacted = compact(schema)
    assert schema == before, "the input is left as it was"
    documents = [sample(schema, schema), {"root": {"child": {"child": 1}}}]
    documents += [{"s": {"n": 1, "extra": 2}}, {"anyOf": None}, {"anyOf": 3}, {"$ref": "x"}]
    documents += [{"leaf": {"n": "x"}}]
    assert agree(schema, compacted, (d for doc in documents for d in variants(doc))) > 20


def test_the_kept_and_the_rewritten_parts() -> None:
    # a self-referring definition stays one (with its $defs); one that is not is inlined
    recursive = compact(RECURSIVE)
    assert recursive["properties"]["root"] == {"$ref": "#/$defs/Node"}
    assert set(recursive["$defs"]) == {"Node"}
    assert recursive["properties"]["leaf"] == {"type": "object", "properties": {"n": {"type": "integer"}}}
    # a $ref beside a constraint stays a $ref: inlining would mix the two into one object
    assert compact(REF_WITH_CONSTRAINT)["properties"]["s"]["$ref"] == "#/$defs/S"
    # the field's own annotations win over its model's
    described = {
        "$defs": {"S": {"type": "object", "description": "the type", "title": "S"}},
        "properties": {"s": {"$ref": "#/$defs/S", "description": "the field"}},
    }
    inlined = compact(described)["properties"]["s"]
    assert inlined == {"type": "object", "description": "the field", "title": "S"}
    # property names and default values are data, not keywords
    names = compact(NAMES_THAT_LOOK_LIKE_KEYWORDS)
    assert names["properties"]["anyOf"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert names["properties"]["$ref"]["default"] == {"$ref": "#/$defs/S"}


@pytest.mark.anyio
async def test_tools_list_publishes_the_compact_schemas_in_both_eras(settings: Settings, era: str) -> None:
    """What a host reads is what ``sdk.add_tool`` wrote into the definition (the SDK reads the
    output schema live; an upgrade that copied it earlier would publish pydantic's again)."""
    published = {name: schema for name, _, schema in TOOLS}
    async with connect(settings, era) as client:
        listed = (await client.list_tools()).tools
    assert {t.name: t.output_schema for t in listed if t.output_schema is not None} == published
