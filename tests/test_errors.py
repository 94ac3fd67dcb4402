"""``errors.py`` and ``backend_errors.py``: model-name advice, the closest pulled model and the
pulled models named."""

from __future__ import annotations

import pytest
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from mcp_ollama import errors as errors_module
from mcp_ollama.backend_errors import ModelNotFound, OllamaUnreachable, closest_name
from mcp_ollama.errors import (
    Disposition,
    InputTooLarge,
    InvalidSessionId,
    McpOllamaError,
    ModelCannot,
    SessionNotFound,
    StoreError,
)
from mcp_ollama.server.errors import protocol_error, tool_error


def test_the_closest_pulled_model_is_suggested() -> None:
    pulled = ["qwen3:8b", "llama3:8b", "llava:7b"]
    assert closest_name("llama3", pulled) == "llama3:8b"
    assert closest_name("lama3:8b", pulled) == "llama3:8b"
    assert closest_name("qwen", pulled) == "qwen3:8b"
    assert closest_name("mistral:7b", pulled) is None


def test_model_errors_name_the_pulled_models() -> None:
    text = str(ModelNotFound("llama3", "http://127.0.0.1:11434", ["llama3:8b"]))
    assert "Did you mean 'llama3:8b'? Pulled models: llama3:8b." in text
    assert "No model is pulled yet." in str(ModelNotFound("x", "http://h", []))
    many = str(ModelNotFound("zzz", "http://h", [f"m{n}:1b" for n in range(25)]))
    assert "and 5 more" in many
    cannot = str(ModelCannot("llama3:8b", "think", "thinking", [], "qwen3"))
    assert "lacks Ollama's 'thinking' capability" in cannot and "ollama pull qwen3" in cannot


# ---------------------------------------------------------------------------- the tree and its mapping


def _every_error_class() -> list[type[McpOllamaError]]:
    import importlib
    import pkgutil

    import mcp_ollama

    for module in pkgutil.walk_packages(mcp_ollama.__path__, "mcp_ollama."):
        importlib.import_module(module.name)
    found: list[type[McpOllamaError]] = []
    pending: list[type[McpOllamaError]] = [McpOllamaError]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_error_class_is_drawn_in_the_tree_and_has_a_disposition() -> None:
    tree = errors_module.__doc__ or ""
    classes = _every_error_class()
    assert len(classes) >= 18
    for cls in classes:
        assert f" {cls.__name__} " in tree, (
            f"{cls.__module__}.{cls.__name__} is missing from errors.py's tree"
        )
        assert isinstance(cls.disposition, Disposition), cls
    assert "SettingsError" in tree


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SessionNotFound("demo"), INVALID_PARAMS),
        (InvalidSessionId("../x"), INVALID_PARAMS),
        (InputTooLarge("too long"), INVALID_PARAMS),
        (StoreError("the database is full", "disk full"), INTERNAL_ERROR),
        (OllamaUnreachable("http://127.0.0.1:1"), INTERNAL_ERROR),
        (ModelNotFound("nope:1b", "http://127.0.0.1:1", []), INVALID_PARAMS),
    ],
)
def test_outside_a_tool_each_error_gets_its_dispositions_code_and_its_sentence(
    error: McpOllamaError, code: int
) -> None:
    mapped = protocol_error(None, error)
    assert mapped.error.code == code and mapped.error.message == str(error)
    assert tool_error(error).is_error is True
    assert tool_error(error).content[0].text == str(error)  # type: ignore[union-attr]
