"""A raw JSON-RPC line client for the server subprocess: for what the SDK client cannot send or see."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any

HANDSHAKE_VERSION = "2025-11-25"


class RawServer:
    """``python -m mcp_ollama`` with pipes; every stdout line is kept, and must be JSON-RPC."""

    def __init__(
        self, env: dict[str, str], *args: str, launcher: tuple[str, ...] = ("-m", "mcp_ollama")
    ) -> None:
        full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", ""), **env}
        self.proc = subprocess.Popen(
            [sys.executable, *launcher, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=full_env,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.stdout_raw: list[bytes] = []
        self.stderr_raw: list[bytes] = []
        threading.Thread(
            target=self._pump, args=(self.proc.stdout, self.stdout_raw, True), daemon=True
        ).start()
        threading.Thread(
            target=self._pump, args=(self.proc.stderr, self.stderr_raw, False), daemon=True
        ).start()
        self._next_id = 0

    def _pump(self, stream: Any, sink: list[bytes], enqueue: bool) -> None:
        for line in iter(stream.readline, b""):
            sink.append(line)
            if enqueue:
                self.lines.put(line)

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(json.dumps(message).encode() + b"\n")

    def next_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def read(self, timeout: float = 10.0) -> dict[str, Any]:
        line = self.lines.get(timeout=timeout)
        message = json.loads(line)
        assert isinstance(message, dict)
        return message

    def response(self, request_id: Any, timeout: float = 10.0) -> dict[str, Any]:
        """The response to ``request_id``, skipping notifications."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.read(max(0.01, deadline - time.monotonic()))
            if "id" in message and message["id"] == request_id and "method" not in message:
                return message

    def request(
        self, method: str, params: dict[str, Any] | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        request_id = self.next_id()
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.response(request_id, timeout)

    def initialize(self, version: str = HANDSHAKE_VERSION) -> dict[str, Any]:
        result = self.request(
            "initialize",
            {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
        )
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None and not stream.closed:
                with contextlib.suppress(OSError):
                    stream.close()

    def stdout_is_pure_jsonrpc(self) -> bool:
        for line in self.stdout_raw:
            message = json.loads(line)
            if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
                return False
        return True

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
