"""From settings to Ollama: the clients (one per server, or a pool of them) and the model loaded
exactly as chats will use it.
"""

from __future__ import annotations

import time

from ..config import Settings
from .admin_models import ModelShow
from .catalog import ModelCatalog
from .client import OllamaClient
from .models import ChatRequest, GenerationOptions
from .pool import OllamaPool


def open_client(settings: Settings) -> OllamaClient:
    """The client for the first Ollama server ``settings`` describe: address, timeouts, credentials."""
    return _client(settings, settings.ollama_url, settings.basic_auth(), settings.bearer_token())


def open_pool(settings: Settings) -> OllamaPool:
    """Every Ollama server ``settings`` describe, as one pool (``async with``: closes them all)."""
    clients = [open_client(settings)]
    key = settings.ollama_api_key.reveal() if settings.ollama_api_key else None
    for host in settings.other_ollama_hosts:
        # As for the first server: its own user and password, else the API key (one header).
        basic = (host.user, host.password.reveal() if host.password else "") if host.user else None
        clients.append(_client(settings, host.url, basic, None if basic else key))
    return OllamaPool(
        clients,
        max_parallel=settings.max_parallel,
        model_parallel=dict(settings.max_parallel_models),
        first_token_timeout=settings.first_token_timeout,
        max_queued_per_user=settings.max_queued_per_user,
    )


async def load_model(client: OllamaClient, settings: Settings, catalog: ModelCatalog | None = None) -> float:
    """Load the default model as chats will use it (``preload_request``); the seconds it took."""
    started = time.monotonic()
    shown = await (catalog or ModelCatalog(client)).details(settings.model)
    await client.load(preload_request(settings, shown))
    return time.monotonic() - started


def preload_request(settings: Settings, shown: ModelShow | None, model: str | None = None) -> ChatRequest:
    """The request that loads ``model`` (default: the configured one) exactly as chats will use it.

    Same ``keep_alive`` and ``num_ctx`` (from the model's details, ``shown``) as every turn
    sends: a different ``num_ctx`` would make Ollama load the model again on the first chat.
    """
    window = settings.context_window(shown.context_length if shown else None)
    return ChatRequest(
        model=model or settings.model,
        messages=[],
        stream=False,
        options=GenerationOptions(num_ctx=window),
        keep_alive=settings.keep_alive,
    )


def _client(
    settings: Settings, url: str, basic_auth: tuple[str, str] | None, api_key: str | None
) -> OllamaClient:
    return OllamaClient(
        url,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.generation_timeout,
        basic_auth=basic_auth,
        api_key=api_key,
    )
