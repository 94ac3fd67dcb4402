"""Credentials on the wire: how an API key travels to Ollama, and never into a repr or a log."""

from __future__ import annotations

from collections.abc import Generator

import httpx


class BearerAuth(httpx.Auth):
    """``Authorization: Bearer <key>``, as Ollama's own clients send ``OLLAMA_API_KEY``."""

    def __init__(self, key: str) -> None:
        self._header = f"Bearer {key}"

    def __repr__(self) -> str:
        return "BearerAuth('********')"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request
