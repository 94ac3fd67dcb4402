"""Ollama's REST API over httpx: typed request and response models and an async client.

This module owns every byte exchanged with Ollama: ``OllamaClient`` posts chat requests and
streams the NDJSON answer as ``ChatChunk`` objects, lists and describes models, and maps
every transport failure, error status and broken stream to the error tree in ``errors.py``
in one place, so that no httpx exception ever reaches a caller. It knows nothing about MCP;
its settings (URL, timeouts, credentials) are passed in by whoever builds it. Credentials travel
only in the ``Authorization`` header, never in the URL, so no error text or log line holds them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager, suppress
from types import TracebackType
from typing import Any, Literal, NoReturn, Self, cast

import anyio
import anyio.lowlevel
import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mcp_ollama.errors import (
    ModelNotFound,
    OllamaStatusError,
    OllamaTimeout,
    OllamaUnreachable,
    StreamError,
)

__all__ = [
    "ChatChunk",
    "ChatMessage",
    "ChatRequest",
    "GenerationOptions",
    "ModelDetails",
    "ModelInfo",
    "ModelShow",
    "OllamaClient",
    "Role",
]

Role = Literal["system", "user", "assistant", "tool"]

_CLOSED_EARLY = "the connection closed before the answer was complete"
# A single NDJSON line is one token plus metadata; anything this long is not Ollama talking.
_MAX_LINE_BYTES = 16 * 1024 * 1024
_ERROR_TEXT_LIMIT = 500
_MAX_PLAUSIBLE_NS = 30 * 24 * 3600 * 10**9  # a month
_MAX_PLAUSIBLE_TOKENS = 10**9
_BLANK_LINES_PER_CHECKPOINT = 1024
_PREVIEW_LIMIT = 100


# --- request and response models ------------------------------------------------------------


class ChatMessage(BaseModel):
    """One message of a conversation, as ``/api/chat`` takes it and streams it back."""

    role: Role = Field(
        description="Who wrote the message: 'system' (instructions), 'user', 'assistant' "
        "(the model) or 'tool' (a tool's result)."
    )
    content: str = Field(description="The text of the message.")


class GenerationOptions(BaseModel):
    """Sampling and length settings for one generation; every field is optional."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(
        default=None,
        ge=0.0,
        le=2.0,
        allow_inf_nan=False,
        description="Sampling temperature from 0 to 2. Low values (0-0.3) give focused, repeatable "
        "answers; high values (1 and above) give more varied, creative ones. Leave unset for the "
        "model's default (usually 0.8).",
    )
    top_p: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Nucleus sampling, 0 to 1: pick only among the most likely tokens whose "
        "probabilities add up to this value. Lower is more conservative. Default 0.9.",
    )
    top_k: int | None = Field(
        default=None,
        ge=1,
        description="Pick only among the K most likely tokens (at least 1). Lower is more "
        "conservative. Default 40.",
    )
    seed: int | None = Field(
        default=None,
        description="Random seed. The same seed, messages and options give the same answer; "
        "leave unset for a fresh answer each time.",
    )
    num_predict: int | None = Field(
        default=None,
        ge=-2,
        description="Maximum number of tokens to generate. -1 means no limit (the default), "
        "-2 means until the context window is full. The answer is cut off when it is reached.",
    )
    num_ctx: int | None = Field(
        default=None,
        ge=256,
        le=1_048_576,
        description="Context window in tokens (conversation plus answer), 256 to 1048576. Larger "
        "windows remember more of a long conversation but use more memory; do not exceed the "
        "model's own maximum context length. Leave unset for the server's default.",
    )
    stop: list[str] | None = Field(
        default=None,
        max_length=16,
        description="Up to 16 stop sequences: generation ends as soon as the answer would contain "
        "one of these strings (the string itself is not included).",
    )
    repeat_penalty: float | None = Field(
        default=None,
        ge=0.0,
        allow_inf_nan=False,
        description="Penalty for repeating recent tokens: above 1 discourages repetition, 1 turns "
        "it off. Default 1.1.",
    )
    min_p: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Minimum probability, 0 to 1, relative to the most likely token: tokens less "
        "likely than min_p times the top token's probability are never picked. 0 (the default) "
        "turns it off.",
    )

    def to_ollama(self) -> dict[str, Any]:
        """The ``options`` object for Ollama, without the fields left unset."""
        return self.model_dump(exclude_none=True)


class ChatRequest(BaseModel):
    """The body of ``POST /api/chat``."""

    model: str = Field(description="Name of a pulled model, such as 'llama3:8b'.")
    messages: list[ChatMessage] = Field(description="The conversation so far, oldest first.")
    stream: bool = Field(
        default=True, description="Stream the answer token by token (NDJSON) instead of in one object."
    )
    options: GenerationOptions | None = Field(
        default=None, description="Sampling and length settings; unset means the model's defaults."
    )
    keep_alive: str | int | None = Field(
        default=None,
        description="How long Ollama keeps the model loaded afterwards: a duration such as '5m', "
        "seconds as a number, 0 to unload at once, negative to keep it loaded.",
    )

    def to_ollama(self) -> dict[str, Any]:
        """The JSON body for Ollama, without the fields left unset."""
        return self.model_dump(exclude_none=True)


class ChatChunk(BaseModel):
    """One NDJSON line of a streamed chat answer (or the whole answer when not streaming)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(description="The model that produced the chunk.")
    created_at: str = Field(description="When Ollama produced the chunk (RFC 3339 text).")
    message: ChatMessage | None = Field(
        default=None, description="The piece of the answer this chunk carries (usually one token)."
    )
    done: bool = Field(description="True on the last chunk, which carries the counters.")
    done_reason: str | None = Field(
        default=None,
        description="Why generation stopped: 'stop' (finished), 'length' (num_predict reached), "
        "'load' or 'unload'.",
    )
    # Counters are data, not trust: an implausible one (negative, fractional, absurdly large) is
    # kept as None, never stored as given. Ollama omits a counter that is zero.
    total_duration: int | None = Field(default=0, description="Whole request, in nanoseconds.")
    load_duration: int | None = Field(default=0, description="Loading the model, in nanoseconds.")
    prompt_eval_count: int | None = Field(default=0, description="Prompt tokens evaluated.")
    prompt_eval_duration: int | None = Field(default=0, description="Evaluating the prompt, in nanoseconds.")
    eval_count: int | None = Field(default=0, description="Tokens generated.")
    eval_duration: int | None = Field(default=0, description="Generating the answer, in nanoseconds.")

    @field_validator("total_duration", "load_duration", "prompt_eval_duration", mode="before")
    @classmethod
    def _plausible_duration(cls, value: object) -> int | None:
        return _plausible(value, _MAX_PLAUSIBLE_NS)

    @field_validator("prompt_eval_count", "eval_count", mode="before")
    @classmethod
    def _plausible_count(cls, value: object) -> int | None:
        return _plausible(value, _MAX_PLAUSIBLE_TOKENS)


def _plausible(value: object, limit: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if 0 <= value <= limit else None


class ModelDetails(BaseModel):
    """The ``details`` object Ollama attaches to a model."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    format: str | None = Field(default=None, description="File format of the weights, e.g. 'gguf'.")
    family: str | None = Field(default=None, description="Model family, e.g. 'llama'.")
    families: list[str] | None = Field(default=None, description="All families the model belongs to.")
    parameter_size: str | None = Field(default=None, description="Parameter count as text, e.g. '8.0B'.")
    quantization_level: str | None = Field(default=None, description="Quantization, e.g. 'Q4_0'.")


class ModelInfo(BaseModel):
    """One pulled model, as listed by ``GET /api/tags``."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    name: str = Field(description="The name to use in requests, e.g. 'llama3:8b'.")
    model: str = Field(default="", description="The model reference (usually the same as name).")
    modified_at: str | None = Field(default=None, description="When the model was last pulled or changed.")
    size: int = Field(default=0, description="Size on disk in bytes.")
    digest: str = Field(default="", description="SHA-256 digest of the model manifest.")
    details: ModelDetails = Field(default_factory=ModelDetails, description="Family, size, quantization.")


class ModelShow(BaseModel):
    """What we use from ``POST /api/show``: the model's limits and what it can do."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    context_length: int | None = Field(
        default=None, description="The longest context the model was trained for, in tokens."
    )
    family: str | None = Field(default=None, description="Model family, e.g. 'llama'.")
    parameter_size: str | None = Field(default=None, description="Parameter count as text, e.g. '8.0B'.")
    quantization_level: str | None = Field(default=None, description="Quantization, e.g. 'Q4_0'.")
    capabilities: list[str] = Field(
        default_factory=list, description="What the model supports, e.g. 'completion', 'tools'."
    )

    @classmethod
    def from_ollama(cls, payload: Mapping[str, Any]) -> Self:
        """Pick our fields out of an ``/api/show`` answer; raises ``ValidationError`` on nonsense."""
        details = payload.get("details")
        details = details if isinstance(details, Mapping) else {}
        return cls.model_validate(
            {
                "context_length": _context_length(payload.get("model_info")),
                "family": details.get("family"),
                "parameter_size": details.get("parameter_size"),
                "quantization_level": details.get("quantization_level"),
                "capabilities": payload.get("capabilities") or [],
            }
        )


def _context_length(model_info: Any) -> int | None:
    """``model_info["<architecture>.context_length"]``, or any ``*.context_length`` key."""
    if not isinstance(model_info, Mapping):
        return None
    architecture = model_info.get("general.architecture")
    keys = [f"{architecture}.context_length"] if isinstance(architecture, str) else []
    keys += [key for key in model_info if isinstance(key, str) and key.endswith(".context_length")]
    for key in keys:
        value = model_info.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


class _TagsResponse(BaseModel):
    model_config = ConfigDict(defer_build=True)

    models: list[ModelInfo]


class _VersionResponse(BaseModel):
    model_config = ConfigDict(defer_build=True)

    version: str


# --- the client -------------------------------------------------------------------------------


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
            auth = _BearerAuth(api_key)
        self._http = httpx.AsyncClient(
            base_url=self._base_url,
            auth=auth,
            timeout=timeout,
            transport=transport,
            trust_env=False,  # a proxy from the environment must not capture a local server
            # Ollama does not compress, but a proxy in front of it might; an inflated body is
            # unbounded work on the event loop, so ask for none.
            headers={"User-Agent": "mcp-ollama", "Accept-Encoding": "identity"},
            # Plain http never does TLS, so skip loading the CA bundle: ~25 ms of every start.
            verify=self._base_url.startswith("https://"),
        )

    @property
    def base_url(self) -> str:
        """The Ollama URL this client talks to, without a trailing slash (nor credentials)."""
        return self._base_url

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._http.aclose()

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
        with self._translate_errors():
            http_request = self._http.build_request("POST", "/api/chat", json=request.to_ollama())
            response = await self._http.send(http_request, stream=True)
        chunks: _ChunkStream | None = None
        try:
            await self._raise_for_status(response, model=request.model)
            chunks = _ChunkStream(self, response)
            yield chunks
        finally:
            with anyio.CancelScope(shield=True):
                if chunks is not None:
                    await chunks.aclose()
                await _close_quietly(response)

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
        response, data = await self._request_json("GET", "/api/ps")
        try:
            return [m.name for m in _TagsResponse.model_validate(data).models]
        except ValidationError as exc:
            self._raise_unexpected_body(response, exc)

    async def version(self) -> str:
        """Ollama's version string (``GET /api/version``)."""
        response, data = await self._request_json("GET", "/api/version")
        try:
            return _VersionResponse.model_validate(data).version
        except ValidationError as exc:
            self._raise_unexpected_body(response, exc)

    # --- internals ----------------------------------------------------------------------------

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
        except ValueError as exc:
            self._raise_unexpected_body(response, exc)

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """Turn httpx's and the OS's exceptions into ours: the one place where that happens."""
        url = self._base_url
        try:
            yield
        except httpx.ConnectTimeout as exc:
            raise OllamaUnreachable(url, "connection attempt timed out") from exc
        except httpx.TimeoutException as exc:  # read, write or pool timeout
            raise OllamaTimeout(url, self._read_timeout) from exc
        except (httpx.ConnectError, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise OllamaUnreachable(url, _describe(exc)) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.CloseError) as exc:
            raise StreamError(url, _CLOSED_EARLY) from exc
        except httpx.TransportError as exc:  # proxy or local protocol trouble
            raise OllamaUnreachable(url, _describe(exc)) from exc
        except httpx.HTTPError as exc:  # undecodable content-encoding and the like
            raise StreamError(url, f"unreadable response: {_describe(exc)}") from exc
        except OSError as exc:
            raise OllamaUnreachable(url, _describe(exc)) from exc

    async def _raise_for_status(self, response: httpx.Response, *, model: str | None) -> None:
        if response.is_success:
            return
        with self._translate_errors():
            await response.aread()
        if response.status_code == 404 and model is not None:
            raise ModelNotFound(model, self._base_url)
        raise OllamaStatusError(response.status_code, _error_text(response), self._base_url)

    def _raise_unexpected_body(self, response: httpx.Response, exc: Exception) -> NoReturn:
        # Most likely another program answers on Ollama's port.
        path = response.request.url.path
        detail = (
            f"a body that is not Ollama's answer to {response.request.method} {path} "
            f"(is another program listening there?): {_preview(response.content)}"
        )
        raise OllamaStatusError(response.status_code, detail, self._base_url) from exc


class _BearerAuth(httpx.Auth):
    """``Authorization: Bearer <key>``, as Ollama's own clients send ``OLLAMA_API_KEY``."""

    def __init__(self, key: str) -> None:
        self._header = f"Bearer {key}"

    def __repr__(self) -> str:
        return "_BearerAuth('********')"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request


class _ChunkStream:
    """Splits a streamed NDJSON body into ``ChatChunk`` objects.

    Lines are split on ``\\n`` only: httpx's ``aiter_lines`` also splits on U+0085, U+2028 and
    friends, which Go's JSON encoder may leave unescaped inside a token.
    """

    def __init__(self, client: OllamaClient, response: httpx.Response) -> None:
        self._client = client
        # httpx annotates it as an AsyncIterator; it is a generator, which we close explicitly.
        self._body = cast(AsyncGenerator[bytes, None], response.aiter_bytes())
        self._buffer = bytearray()
        self._body_ended = False
        self._finished = False
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ChatChunk:
        if self._closed:
            raise RuntimeError("chat chunks read after the chat_stream block was left")
        if self._finished:
            raise StopAsyncIteration
        try:
            line = await self._next_line()
            if line is None:
                raise StreamError(self._client.base_url, _CLOSED_EARLY)
            chunk = self._parse(line)
            if chunk.done:
                # Read the (empty) rest of the body so the connection goes back to the pool.
                while await self._next_line() is not None:
                    pass
        except BaseException:
            self._finished = True
            raise
        if chunk.done:
            self._finished = True
        return chunk

    async def aclose(self) -> None:
        self._closed = True
        await _close_quietly(self._body)

    async def _next_line(self) -> bytes | None:
        """The next non-blank line, or None at the end of the body."""
        blank = 0
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                if line.strip():
                    return line
                blank += 1
                if blank % _BLANK_LINES_PER_CHECKPOINT == 0:
                    await anyio.lowlevel.checkpoint()  # a flood of blank lines must not freeze the server
                continue
            if self._body_ended:
                line = bytes(self._buffer)
                self._buffer.clear()
                return line if line.strip() else None
            if len(self._buffer) > _MAX_LINE_BYTES:
                raise StreamError(
                    self._client.base_url, f"malformed line from Ollama: {_preview(self._buffer)}"
                )
            with self._client._translate_errors():
                try:
                    self._buffer += await anext(self._body)
                except StopAsyncIteration:
                    self._body_ended = True

    def _parse(self, line: bytes) -> ChatChunk:
        url = self._client.base_url
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise StreamError(url, f"malformed line from Ollama: {_preview(line)}") from exc
        if isinstance(data, dict) and "error" in data:
            raise StreamError(url, f"Ollama reported: {_clip(str(data['error']))}")
        try:
            return ChatChunk.model_validate(data)
        except ValidationError as exc:
            raise StreamError(url, f"malformed line from Ollama: {_preview(line)}") from exc


async def _close_quietly(closable: httpx.Response | AsyncGenerator[bytes, None]) -> None:
    """Close a response or body iterator; failing to close a dropped connection is not news."""
    with suppress(httpx.HTTPError, OSError):
        await closable.aclose()


def _error_text(response: httpx.Response) -> str:
    """Ollama's ``{"error": ...}`` text, else the raw body (truncated), else the reason phrase."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return _clip(str(data["error"]))
    text = response.content.decode("utf-8", "replace").strip()
    return text[:_ERROR_TEXT_LIMIT] or response.reason_phrase or "no error text"


def _clip(text: str) -> str:
    """Ollama's error text at a readable length."""
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[: _ERROR_TEXT_LIMIT - 1] + "…"


def _preview(raw: bytes | bytearray) -> str:
    return bytes(raw[: _PREVIEW_LIMIT * 4]).decode("utf-8", "replace")[:_PREVIEW_LIMIT]


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
