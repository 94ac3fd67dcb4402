"""Managing the models of the pool's servers: which servers a pull goes to, what each holds in
memory, unloading, embeddings, and forgetting what was cached about a model that changed.

Functions over ``OllamaPool``'s public face (``clients``, ``where``, ``forget``, ``catalog``,
``catalog_for``), so the pool stays about routing chats. Nothing here knows about MCP.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
import httpx

from ..errors import BackendError, InputError, ModelCannot
from .admin_models import EmbedRequest, EmbedResponse, RunningModel
from .client import OllamaClient
from .models import ChatRequest
from .pool import OllamaPool

EMBEDDING = "embedding"
"""Ollama's capability name for models that make embeddings."""


@dataclass(frozen=True)
class ServerModels:
    """What one server holds in memory now (``/api/ps``), or why it could not say."""

    url: str
    models: list[RunningModel] = field(default_factory=list)
    error: str | None = None


def model_key(name: str) -> str:
    """``name`` as Ollama matches it: no tag means ``:latest``, and case does not count."""
    name = name.strip()
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name.casefold()


def pick_servers(pool: OllamaPool, server: str | None) -> list[OllamaClient]:
    """The servers ``server`` names (a URL, or ``host:port``, as listings show them); all when None.

    ``InputError`` naming the servers there are when it names none of them.
    """
    clients = pool.clients
    if server is None or not server.strip():
        return clients
    wanted = _address(server)
    found = [client for client in clients if _address(client.base_url) == wanted]
    if not found:
        urls = ", ".join(client.base_url for client in clients)
        raise InputError(
            f"No Ollama server {server.strip()[:200]!r} here; the servers are: {urls}. Name one of them "
            "(as running_models shows it), or leave server out to use every one."
        )
    return found


def _address(text: str) -> str:
    """``host:port`` of a URL or of ``host:port`` itself, lower case (Ollama's default port filled in)."""
    text = text.strip().rstrip("/")
    try:
        url = httpx.URL(text if "://" in text else f"http://{text}")
    except httpx.InvalidURL:
        return text.casefold()
    port = url.port or (443 if url.scheme == "https" else 80 if "://" in text else 11434)
    return f"{url.host.casefold()}:{port}"


async def running(pool: OllamaPool) -> list[ServerModels]:
    """What every server holds in memory, asked concurrently, in the pool's order."""
    clients = pool.clients
    found: dict[str, ServerModels] = {}

    async def ask(client: OllamaClient) -> None:
        try:
            found[client.base_url] = ServerModels(client.base_url, await client.running_models())
        except BackendError as exc:
            found[client.base_url] = ServerModels(client.base_url, error=str(exc))

    async with anyio.create_task_group() as tg:
        for client in clients:
            tg.start_soon(ask, client)
    return [found[client.base_url] for client in clients]


async def unload(pool: OllamaPool, model: str) -> tuple[list[str], list[ServerModels]]:
    """Unload ``model`` (``keep_alive: 0``) from every server that holds it now.

    The URLs it was unloaded from, and every server's state as it was asked (servers that could
    not say carry their error). Raises when a server that holds it refuses to let it go.
    """
    states = await running(pool)
    key = model_key(model)
    clients = {client.base_url: client for client in pool.clients}
    unloaded: list[str] = []
    for state in states:
        for loaded in state.models:
            if model_key(loaded.name) == key:
                request = ChatRequest(model=loaded.name, messages=[], stream=False, keep_alive=0)
                await clients[state.url].load(request)
                unloaded.append(state.url)
    return unloaded, states


async def embed(pool: OllamaPool, request: EmbedRequest) -> tuple[str, EmbedResponse]:
    """``request`` embedded on a server that has its model: the server's URL and Ollama's answer.

    ``ModelNotFound`` (naming the pulled models) when no server has the model; ``ModelCannot``
    (naming the pulled models that can) when the model says it cannot embed.
    """
    catalog = await pool.catalog_for(request.model)
    shown = await catalog.details(request.model)
    if shown is not None and shown.capabilities and EMBEDDING not in shown.capabilities:
        able = await catalog.able(EMBEDDING)
        raise ModelCannot(request.model, "embed text", EMBEDDING, able, "nomic-embed-text")
    client = next(c for c in pool.clients if c.base_url == catalog.url)
    return client.base_url, await client.embed(request)


def forget(pool: OllamaPool, model: str) -> None:
    """Forget what is cached about ``model`` and every server's model list (it was pulled or removed)."""
    pool.forget()
    for client in pool.clients:
        pool.catalog(client.base_url).forget(model)
