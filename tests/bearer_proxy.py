"""A loopback HTTP proxy that adds ``Authorization: Bearer TOKEN`` to every request it forwards.

For clients that cannot send the header themselves (the MCP conformance suite has no option for
it): the server under test keeps requiring its token, and the proxy is the authorised client.
Each request is forwarded as it came (method, path, headers, body) and the answer streamed back as
it arrives (server-sent events included), one request per connection.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "te", "upgrade"}


@contextmanager
def bearer_proxy(upstream: str, token: str) -> Iterator[str]:
    """Serve on a free loopback port until the block ends; the proxy's base URL."""
    client = httpx.Client(base_url=upstream, timeout=httpx.Timeout(10.0, read=None))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # the end of the body is the end of the connection

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            headers["Authorization"] = f"Bearer {token}"
            request = client.build_request(self.command, self.path, headers=headers, content=body)
            response = client.send(request, stream=True)
            try:
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in _HOP:
                        self.send_header(key, value)
                self.end_headers()
                for chunk in response.iter_raw():
                    self.wfile.write(chunk)
                    self.wfile.flush()
            finally:
                response.close()

        do_GET = do_POST = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        client.close()
