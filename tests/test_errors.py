"""``errors.py``: model-name advice, the closest pulled model and the pulled models named."""

from __future__ import annotations

from mcp_ollama.errors import ModelCannot, ModelNotFound, closest_name


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
