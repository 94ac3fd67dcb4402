"""``embed``: the fake's faithful ``/api/embed``, the tool in both eras (vectors in
``structuredContent`` only, the capability check, the caps) and ``mcp-ollama embed``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import httpx
import pytest
from mcp_types import CallToolResult

from mcp_ollama.cli import main
from mcp_ollama.config import Settings
from mcp_ollama.core.embeds import MAX_EMBED_BYTES, MAX_EMBED_INPUTS

from .conftest import connect
from .fake_ollama import LLAMA3, FakeOllama
from .fake_ollama.embedding import fake_vector
from .fake_ollama.pulling import NOMIC_EMBED

pytestmark = pytest.mark.anyio


@pytest.fixture
def embedder(fake: FakeOllama) -> FakeOllama:
    """The fake with llama3:8b and nomic-embed-text pulled."""
    fake.models[:] = [LLAMA3, NOMIC_EMBED]
    return fake


def text(result: CallToolResult) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


# ---------------------------------------------------------------------------- the fake


@pytest.mark.usefixtures("embedder")
@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        ({"model": "nomic-embed-text", "input": ""}, 200, {"model": "nomic-embed-text", "embeddings": []}),
        ({"model": "nomic-embed-text", "input": 3}, 400, {"error": "invalid input type"}),
        ({"model": "nomic-embed-text", "input": ["a", 1]}, 400, {"error": "invalid input type"}),
        ({"model": "nope", "input": "a"}, 404, {"error": "model 'nope' not found"}),
        ({"model": "llama3:8b", "input": "a"}, 400, {"error": '"llama3:8b" does not support embeddings'}),
    ],
)
def test_the_fake_answers_embed_requests_as_ollama_does(
    fake: FakeOllama, body: dict[str, object], status: int, answer: dict[str, object]
) -> None:
    got = httpx.post(fake.url + "/api/embed", json=body)
    assert got.status_code == status
    assert got.json() == answer


@pytest.mark.usefixtures("embedder")
def test_the_fake_embeds_a_string_or_a_list_with_unit_vectors(fake: FakeOllama) -> None:
    one = httpx.post(fake.url + "/api/embed", json={"model": "nomic-embed-text", "input": "hi"}).json()
    two = httpx.post(
        fake.url + "/api/embed", json={"model": "nomic-embed-text", "input": ["hi", "yo"]}
    ).json()
    short = httpx.post(
        fake.url + "/api/embed", json={"model": "nomic-embed-text", "input": ["hi"], "dimensions": 16}
    ).json()
    assert len(one["embeddings"]) == 1 and len(one["embeddings"][0]) == 768
    assert two["embeddings"][0] == one["embeddings"][0] == fake_vector("hi", 768)
    assert len(short["embeddings"][0]) == 16
    assert math.isclose(sum(v * v for v in short["embeddings"][0]), 1.0)
    assert two["prompt_eval_count"] >= 2


# ---------------------------------------------------------------------------- the tool


@pytest.mark.usefixtures("embedder")
async def test_two_inputs_give_two_vectors_of_the_stated_dimension(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        result = await client.call_tool(
            "embed", {"input": ["first text", "second text"], "model": "nomic-embed-text", "dimensions": 64}
        )
    assert result.is_error is not True, text(result)
    data = result.structured_content
    assert data is not None
    assert data["model"] == "nomic-embed-text" and data["dimensions"] == 64 and data["count"] == 2
    assert [len(v) for v in data["embeddings"]] == [64, 64]
    assert data["embeddings"][0] != data["embeddings"][1]
    assert text(result) == (
        "2 vectors of 64 dimensions from nomic-embed-text, in structuredContent.embeddings (in the order "
        "of the inputs)."
    )


@pytest.mark.usefixtures("embedder")
async def test_one_string_uses_the_default_model_and_no_number_reaches_the_text(
    settings: Settings, fake: FakeOllama
) -> None:
    async with connect(settings, "modern") as client:
        result = await client.call_tool("embed", {"input": "just one"})
    assert result.structured_content is not None and result.structured_content["dimensions"] == 768
    assert result.structured_content["embeddings"] == [fake_vector("just one", 768)]
    assert len(text(result)) < 200 and "0." not in text(result)
    sent = [r.body for r in fake.requests if r.path == "/api/embed"]
    assert sent == [{"model": "nomic-embed-text", "input": ["just one"]}]


@pytest.mark.usefixtures("embedder")
async def test_a_model_that_cannot_embed_is_refused_naming_one_that_can(settings: Settings, era: str) -> None:
    async with connect(settings, era) as client:
        result = await client.call_tool("embed", {"input": "x", "model": "llama3:8b"})
    assert result.is_error is True
    assert text(result) == (
        "llama3:8b cannot embed text (it lacks Ollama's 'embedding' capability). Pulled models that can: "
        "nomic-embed-text:latest. Pass one of them as `model`, or call without it."
    )


async def test_a_missing_embedding_model_says_how_to_get_it(settings: Settings, fake: FakeOllama) -> None:
    async with connect(settings, "legacy") as client:
        result = await client.call_tool("embed", {"input": "x"})
    assert result.is_error is True
    assert "Model 'nomic-embed-text' is not available" in text(result)
    assert "Pulled models: llama3:8b" in text(result)


@pytest.mark.usefixtures("embedder")
@pytest.mark.parametrize(
    ("given", "says"),
    [
        ([], "Give at least one text to embed"),
        (["ok", "  "], "Input 1 is empty"),
        (["x"] * (MAX_EMBED_INPUTS + 1), f"at most {MAX_EMBED_INPUTS}"),
        (
            ["x" * (MAX_EMBED_BYTES // 2), "y" * (MAX_EMBED_BYTES // 2 + 1)],
            f"at most {MAX_EMBED_BYTES:,} bytes",
        ),
    ],
)
async def test_inputs_are_capped_per_call_and_the_error_says_the_cap(
    settings: Settings, fake: FakeOllama, given: list[str], says: str
) -> None:
    async with connect(settings, "legacy") as client:
        result = await client.call_tool("embed", {"input": given})
    assert result.is_error is True and says in text(result)
    assert not [r for r in fake.requests if r.path == "/api/embed"], "refused before Ollama is asked"


# ---------------------------------------------------------------------------- the command


@pytest.mark.usefixtures("embedder")
def test_the_embed_command_prints_a_vector_per_line_or_json(
    fake: FakeOllama, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = ["--ollama-host", fake.url]
    assert main(["embed", "alpha", "beta", "--dimensions", "4", *host]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and [len(line.split()) for line in lines] == [4, 4]
    assert main(["embed", "alpha", "--json", *host]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["model"] == "nomic-embed-text" and document["dimensions"] == 768
    assert document["embeddings"] == [fake_vector("alpha", 768)]
    assert main(["embed", "alpha", "--embed-model", "llama3:8b", *host]) == 1
    assert "cannot embed text" in capsys.readouterr().err
