"""``OllamaClient``: every byte exchanged with Ollama, and every failure mapped to the error tree, once."""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, NoReturn, Self

import anyio
import anyio.lowlevel
import httpx
from pydantic import ValidationError

from ..backend_errors import ModelNotFound, OllamaStatusError
from .admin_models import (
    EmbedRequest,
    EmbedResponse,
    ModelInfo,
    ModelShow,
    RunningModel,
    _PsResponse,
    _TagsResponse,
    _VersionResponse,
)
from .credentials import BearerAuth
from .foreign import _preview, refuse_foreign, speaks_html
from .http_errors import error_text, translate_errors
from .models import ChatChunk, ChatRequest
from .ndjson import ChunkStream, close_quietly
from .pulling import PullLines

# --- the client -------------------------------------------------------------------------------


def _remember_missing_sniffio() -> None:
    """httpcore imports ``sniffio`` for every lock and event it makes, about ten a chat; where it is
    not installed (anyio 4 no longer needs it), each is an import that fails after searching all of
    ``sys.path``: 5 % of the server's CPU with 50 HTTP clients. Record the absence once, as a failed
    import would, so that each later attempt fails at once (httpcore2 caches it the same way)."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]  # Python's marker for "no such module"


class OllamaClient:
    """An async client for one Ollama server; holds one pooled ``httpx.AsyncClient``.

    Build one per process and close it with ``aclose()`` (or use ``async with``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
        basic_auth: tuple[str, str] | None = None,
        api_key: str | None = None,
    ) -> None:
        """``basic_auth`` (user, password) wins over ``api_key`` (a bearer token): one header."""
        if httpx.URL(base_url).userinfo:
            # httpx would send them, and every error text and log line naming the URL would show them.
            raise ValueError("pass credentials as basic_auth, not in the URL")
        self._base_url = base_url.rstrip("/")
        self._read_timeout = read_timeout
        # Waiting for a free pooled connection is like waiting in Ollama's own queue, so it
        # gets the same budget as waiting for the first token. Request bodies are small, but a
        # busy server may be slow to read them.
        timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=read_timeout
        )
        auth: httpx.Auth | None = None
        if basic_auth is not None:
            auth = httpx.BasicAuth(*basic_auth)
        elif api_key is not None:
            auth = BearerAuth(api_key)
        self._options: dict[str, Any] = {
            "base_url": self._base_url,
            "auth": auth,
            "timeout": timeout,
            "transport": transport,
            "trust_env": False,  # a proxy from the environment must not capture a local server
            # Ollama does not compress, but a proxy in front of it might; an inflated body is
            # unbounded work on the event loop, so ask for none.
            "headers": {"User-Agent": "mcp-ollama", "Accept-Encoding": "identity"},
            # Plain http never does TLS, so skip loading the CA bundle: ~25 ms of every start.
            "verify": self._base_url.startswith("https://"),
        }
        self._pooled: httpx.AsyncClient | None = None

    @property
    def _http(self) -> httpx.AsyncClient:
        """The pooled HTTP client, built on first use: building one (its transport, httpcore's
        import) is about 25 ms that a stdio start would otherwise spend before ``initialize``."""
        if self._pooled is None:
            _remember_missing_sniffio()
            self._pooled = httpx.AsyncClient(**self._options)
        return self._pooled

    @property
    def base_url(self) -> str:
        """The Ollama URL this client talks to, without a trailing slash (nor credentials)."""
        return self._base_url

    async def aclose(self) -> None:
        """Close every pooled connection."""
        if self._pooled is not None:
            await self._pooled.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @asynccontextmanager
    async def chat_stream(self, request: ChatRequest) -> AsyncIterator[AsyncIterator[ChatChunk]]:
        """POST ``/api/chat`` and yield an async iterator over the answer's chunks.

        The iterator ends after the ``done`` chunk, or raises a ``BackendError``. Leaving the
        block for any reason (end, break, exception, cancellation) closes the response; unless
        it was read to the end, that drops the connection, which is what makes Ollama stop
        generating.
        """
        async with self._ndjson("/api/chat", request.to_ollama(), model=request.model) as chunks:
            yield chunks

    @asynccontextmanager
    async def pull_stream(self, model: str, *, insecure: bool = False) -> AsyncIterator[PullLines]:
        """POST ``/api/pull`` and yield its progress lines (``PullLines``), ending after ``success``.

        Leaving the block before then drops the connection, which makes Ollama stop the download
        (what it has is kept, and a later pull resumes from there).
        """
        body = {"model": model, **({"insecure": True} if insecure else {})}
        async with self._ndjson("/api/pull", body, model=None) as lines:
            yield PullLines(lines._next_line, self._base_url, model)

    async def embed(self, request: EmbedRequest) -> EmbedResponse:
        """One vector per input (``POST /api/embed``); ``ModelNotFound`` if the model is not pulled."""
        body = request.to_ollama()
        response, data = await self._request_json("POST", "/api/embed", body=body, model=request.model)
        try:
            return EmbedResponse.model_validate(data)
        except ValidationError as exc:
            self._raise_unexpected_body(response, exc)

    async def running_models(self) -> list[RunningModel]:
        """The models Ollama holds in memory now, with their sizes and expiry (``GET /api/ps``)."""
        response, data = await self._request_json("GET", "/api/ps")
        try:
            return _PsResponse.model_validate(data).models
        except ValidationError as exc:
            self._raise_unexpected_body(response, exc)

    async def list_models(self) -> list[ModelInfo]:
        """The pulled models (``GET /api/tags``)."""
        response, data = await self._request_json("GET", "/api/tags")
        try:
            return _TagsResponse.model_validate(data).models
        except ValidationError as exc:
            self._raise_unexpected_body(response, exc)

    async def show(self, model: str) -> ModelShow:
        """Details of one pulled model (``POST /api/show``); ``ModelNotFound`` if it is not pulled."""
        response, data = await self._request_json("POST", "/api/show", body={"model": model}, model=model)
        try:
            if not isinstance(data, Mapping):
                raise TypeError("not a JSON object")
            return ModelShow.from_ollama(data)
        except (TypeError, ValidationError) as exc:
            self._raise_unexpected_body(response, exc)

    async def load(self, request: ChatRequest) -> ChatChunk:
        """Load ``request.model`` (a chat with no messages); Ollama answers ``done_reason: "load"``."""
        body = request.model_copy(update={"messages": [], "stream": False}).to_ollama()
        response, data = await self._request_json("POST", "/api/chat", body=body, model=request.model)
        try:
            return ChatChunk.model_validate(data)
        except ValidationError as exc:
            self._raise_unexpected_body(response, exc)

    async def loaded_models(self) -> list[str]:
        """Names of the models Ollama holds in memory now (``GET /api/ps``)."""
        return [m.name for m in await self.running_models()]

    async def version(self) -> str:
        """Ollama's version string (``GET /api/version``)."""
        response, data = await self._request_json("GET", "/api/version")
        try:
            return _VersionResponse.model_validate(data).version
        except ValidationError as exc:
            self._raise_unexpected_body(response, exc)

    # --- internals ----------------------------------------------------------------------------

    @asynccontextmanager
    async def _ndjson(
        self, path: str, body: dict[str, Any], *, model: str | None
    ) -> AsyncIterator[ChunkStream]:
        """POST ``body`` to ``path`` and yield its streamed NDJSON body; closed however the block ends."""
        with self._translate_errors():
            # The body goes as a one-shot stream: httpx's request and response point at each other,
            # so a body given as `json=` (an image call's tens of MiB) stays until a full GC.
            box = [json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()]
            headers = {"Content-Type": "application/json", "Content-Length": str(len(box[0]))}
            http_request = self._http.build_request("POST", path, content=_once(box), headers=headers)
            del box
            response = await self._http.send(http_request, stream=True)
        lines: ChunkStream | None = None
        try:
            await self._raise_for_status(response, model=model)
            lines = ChunkStream(self._base_url, self._translate_errors, response)
            yield lines
        finally:
            with anyio.CancelScope(shield=True):
                if lines is not None:
                    await lines.aclose()
                await close_quietly(response)

    async def _request_json(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        model: str | None = None,
    ) -> tuple[httpx.Response, Any]:
        with self._translate_errors():
            response = await self._http.request(method, path, json=body)
        await self._raise_for_status(response, model=model)
        try:
            return response, response.json()
        except (ValueError, RecursionError) as exc:
            self._raise_unexpected_body(response, exc)

    def _translate_errors(self) -> AbstractContextManager[None]:
        """``http_errors.translate_errors`` for this server."""
        return translate_errors(self._base_url, self._read_timeout)

    async def _raise_for_status(self, response: httpx.Response, *, model: str | None) -> None:
        if response.is_success and not speaks_html(response):
            return
        with self._translate_errors():
            await response.aread()
        refuse_foreign(response, self._base_url)  # a web page, not Ollama's JSON (nor a missing model)
        if response.status_code == 404 and model is not None:
            raise ModelNotFound(model, self._base_url)
        raise OllamaStatusError(response.status_code, error_text(response), self._base_url)

    def _raise_unexpected_body(self, response: httpx.Response, exc: Exception) -> NoReturn:
        # Most likely another program answers on Ollama's port.
        path = response.request.url.path
        detail = (
            f"a body that is not Ollama's answer to {response.request.method} {path} "
            f"(is another program listening there?): {_preview(response.content)}"
        )
        raise OllamaStatusError(response.status_code, detail, self._base_url) from exc


async def _once(box: list[bytes]) -> AsyncIterator[bytes]:
    """Yield the one body in ``box`` and keep no reference to it."""
    yield box.pop()
