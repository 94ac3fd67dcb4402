"""``server.json``, the entry for the MCP registry, against the package it describes.

The registry's schema (2025-12-11) is not vendored. ``SERVER_SCHEMA`` below holds the parts of it
this file relies on (required fields, the name pattern, the length limits, a package's required
fields and the stdio transport), checked with ``jsonschema``. To check against the whole official
schema, download it and point ``MCP_REGISTRY_SCHEMA`` at the file.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import mcp_ollama
from mcp_ollama.config import SETTINGS_SPEC

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"
OFFICIAL_SCHEMA_ENV = "MCP_REGISTRY_SCHEMA"

_INPUT = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "default": {"type": "string"},
        "isRequired": {"type": "boolean"},
        "isSecret": {"type": "boolean"},
        "format": {"enum": ["string", "number", "boolean", "filepath"]},
    },
    "required": ["name", "description"],
}
SERVER_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "properties": {
        "$schema": {"const": SCHEMA_URL},
        "name": {
            "type": "string",
            "minLength": 3,
            "maxLength": 200,
            "pattern": "^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$",
        },
        "title": {"type": "string", "minLength": 1, "maxLength": 100},
        "description": {"type": "string", "minLength": 1, "maxLength": 100},
        "version": {"type": "string", "maxLength": 255},
        "repository": {"type": "object", "required": ["url", "source"]},
        "packages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "registryType": {"const": "pypi"},
                    "identifier": {"type": "string", "minLength": 1},
                    "version": {"type": "string", "minLength": 1, "not": {"const": "latest"}},
                    "transport": {"const": {"type": "stdio"}},
                    "environmentVariables": {"type": "array", "items": _INPUT},
                },
                "required": ["registryType", "identifier", "version", "transport"],
            },
        },
    },
    "required": ["$schema", "name", "description", "version", "packages"],
}


def server_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "server.json").read_text(encoding="utf-8"))
    return data


def test_server_json_has_the_registry_shape() -> None:
    jsonschema.validate(server_json(), SERVER_SCHEMA)


def test_server_json_names_this_package_and_version() -> None:
    data = server_json()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == "mcp-server-ollama" and project["dynamic"] == ["version"]
    assert data["version"] == mcp_ollama.__version__, "the version is __version__, read by the build"
    assert data["name"].split("/")[1] == project["name"]
    [package] = data["packages"]
    assert package["identifier"] == project["name"]
    assert package["version"] == mcp_ollama.__version__


def test_server_json_documents_only_variables_the_server_reads() -> None:
    [package] = server_json()["packages"]
    documented = {var["name"]: var for var in package["environmentVariables"]}
    known = {spec.env for spec in SETTINGS_SPEC}
    assert set(documented) <= known, f"not read by the server: {set(documented) - known}"
    assert {"OLLAMA_HOST", "MCP_OLLAMA_MODEL"} <= set(documented)
    assert documented["OLLAMA_API_KEY"]["isSecret"] is True
    assert not any(var.get("isRequired") for var in documented.values()), "every setting has a default"


def test_readme_carries_the_registry_ownership_marker() -> None:
    """The registry finds ``mcp-name: <name>`` in a PyPI package's README to prove who owns it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"<!-- mcp-name: {server_json()['name']} -->" in readme


def test_server_json_is_valid_against_the_official_schema() -> None:
    path = os.environ.get(OFFICIAL_SCHEMA_ENV)
    if not path:
        pytest.skip(
            f"the registry's schema is not vendored: set {OFFICIAL_SCHEMA_ENV} to a copy of {SCHEMA_URL}"
        )
    schema = json.loads(Path(path).read_text(encoding="utf-8"))
    assert schema.get("$id") == SCHEMA_URL, f"{path} is not the schema server.json names"
    jsonschema.validate(server_json(), schema)
