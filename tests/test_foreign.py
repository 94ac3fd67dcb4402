"""Something that is not Ollama at Ollama's address (a web server, a proxy's error page) is named as
such in one sentence: status, content type, the page's first characters (``backend/foreign.py``)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mcp_ollama.backend.client import OllamaClient
from mcp_ollama.backend.foreign import OPENING_CHARS, opening
from mcp_ollama.backend_errors import NotOllama
from mcp_ollama.config import Settings

from .conftest import connect
from .test_cli import cli_env, run_cli
from .test_server import text_of

PAGE = (
    "<!DOCTYPE html>\n<html>\n  <head><title>404 Not Found</title></head>\n  <body>\n"
    + "    <p>The page you asked for is not here. " * 40
    + "</p>\n  </body>\n</html>\n"
)


class _WebServer(BaseHTTPRequestHandler):
    """A web server that is not Ollama: an HTML page for every path, 404 under /api, 200 elsewhere."""

    def _page(self) -> None:
        body = PAGE.encode()
        self.send_response(404 if self.path.startswith("/api/") else 200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page

    def log_message(self, format: str, *args: object) -> None:
        pass


class _HtmlOk(_WebServer):
    """A web server that answers 200 with its front page whatever is asked."""

    def _page(self) -> None:
        body = PAGE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _page


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def web() -> Iterator[str]:
    yield from _serve(_WebServer)


@pytest.fixture
def web_ok() -> Iterator[str]:
    yield from _serve(_HtmlOk)


def _is_one_short_sentence(text: str) -> None:
    assert "\n" not in text
    assert "The page you asked for is not here. The page" not in text  # never the whole page
    assert len(text) < 400, text


def test_an_opening_is_one_line_of_at_most_80_characters() -> None:
    assert opening(PAGE.encode()) == opening(PAGE.encode())[: OPENING_CHARS - 1] + "…"
    assert len(opening(PAGE.encode())) == OPENING_CHARS
    assert opening(b"<p>\n\n short \x1b[31m</p>") == "<p> short [31m</p>"


@pytest.mark.anyio
@pytest.mark.parametrize("fixture", ["web", "web_ok"])
async def test_a_web_page_at_ollamas_address_is_named_as_not_ollama(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue(fixture)
    async with OllamaClient(url) as client:
        for call in (client.version, client.list_models):
            with pytest.raises(NotOllama) as raised:
                await call()
            text = str(raised.value)
            _is_one_short_sentence(text)
            assert f"The server at {url} is not Ollama" in text
            assert ("HTTP 404 (text/html)" if fixture == "web" else "HTTP 200 (text/html)") in text
            assert "<!DOCTYPE html> <html> <head><title>404 Not Found</title>" in text
            assert "OLLAMA_HOST" in text


@pytest.mark.anyio
async def test_chat_against_a_web_server_is_a_tool_error_in_one_sentence(
    settings: Settings, web: str
) -> None:
    """Not 'model not found' (the page's 404): the page is not Ollama's."""
    elsewhere = dataclasses.replace(settings, ollama_url=web)
    async with connect(elsewhere, "legacy") as client:
        result = await client.call_tool("chat", {"message": "hello?"})
    assert result.is_error is True
    text = text_of(result)
    assert "is not Ollama" in text and "HTTP 404 (text/html)" in text
    assert "ollama pull" not in text
    _is_one_short_sentence(text)


def test_doctor_says_in_one_line_that_it_is_not_ollama(web: str, db_path: str) -> None:
    done = run_cli(cli_env(web, db_path), "doctor")
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    ollama = [line for line in lines if line.startswith("[FAIL] ollama:")]
    assert len(ollama) == 1 and "is not Ollama" in ollama[0] and "text/html" in ollama[0]
    assert all(line.startswith(("[ok]", "[FAIL]")) for line in lines), done.stdout  # one line per check
    assert "The page you asked for" not in done.stdout
