"""Processes and clients for the HTTP scenarios (``http_scenarios.py``).

Fakes in processes of their own (``bench/fake_process.py``), servers started with a command line
and stopped at the end (``ServerRefused`` when one exits while starting), SDK clients over
streamable HTTP, and ``run_round``: every client making its chats at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

import snapshot
from harness import BENCH, Bench

FAKE_PROCESS = BENCH / "fake_process.py"
READY_LIMIT = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


OPERATOR_TOKEN = "bench-operator-token-for-http-rows"
"""The operator's token (``MCP_OLLAMA_HTTP_TOKEN``) every HTTP server of the bench gets and every
client sends; the floor ignores both."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/PID/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


class ServerRefused(RuntimeError):
    """The server exited while starting (a flag it does not know, say)."""


# --------------------------------------------------------------------------- processes


@dataclass
class FakeProc:
    proc: subprocess.Popen[str]
    url: str

    def stats(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return answer


@contextlib.contextmanager
def fake_process(
    bench: Bench, name: str, *, first_token_delay: float = 0.0, parallel: int = 0
) -> Iterator[FakeProc]:
    argv = [sys.executable, str(FAKE_PROCESS), "--code", str(snapshot.CODE), "--reply", "ok"]
    argv += ["--first-token-delay", str(first_token_delay), "--parallel", str(parallel)]
    with bench.log(name).open("a") as errlog:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog, text=True, cwd=str(bench.tmp)
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"fake {name} did not start (see {bench.log(name)})")
        yield FakeProc(proc, json.loads(line)["url"])
    finally:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class HttpServer:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"


def _tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return ""


def _spawn(bench: Bench, log: Path, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("a") as errlog:
        return subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.DEVNULL,
            stdout=errlog,
            stderr=errlog,
            env=env,
            cwd=str(bench.tmp),
        )


@asynccontextmanager
async def http_server(
    bench: Bench, name: str, argv: list[str], port: int, ollama_url: str, max_parallel: int | None = None
) -> AsyncIterator[HttpServer]:
    """Start a server (``argv`` after the interpreter), wait until it answers HTTP, stop it at the end."""
    log = bench.log(name)
    # MCP_OLLAMA_MAX_PARALLEL: chats in flight per Ollama server (default 1, Ollama's default); by
    # the variable rather than --max-parallel, which a --at snapshot from before it would refuse.
    extra = {
        "MCP_OLLAMA_HTTP_TOKEN": OPERATOR_TOKEN,  # serve --http serves nobody without a token
        # Every bench client comes from 127.0.0.1, as from behind a reverse proxy: raise the cap.
        "MCP_OLLAMA_HTTP_MAX_CONNECTIONS_PER_ADDRESS": "4096",
    }
    if max_parallel is not None:
        extra["MCP_OLLAMA_MAX_PARALLEL"] = str(max_parallel)
    proc = _spawn(bench, log, argv, bench.env(bench.tmp / f"{name}.sqlite3", ollama_url, extra))
    server = HttpServer(name, proc, f"http://127.0.0.1:{port}", log)
    try:
        await _wait_ready(server)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                await anyio.to_thread.run_sync(proc.wait, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def _wait_ready(server: HttpServer) -> None:
    """Until the server answers any HTTP request on ``/mcp`` (a GET without a session: 4xx)."""
    deadline = time.monotonic() + READY_LIMIT
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise ServerRefused(
                    f"{server.name} exited with status {server.proc.returncode} while starting: "
                    f"{_tail(server.log) or '(no output)'}"
                )
            with contextlib.suppress(httpx.TransportError):
                await http.get(server.mcp_url)
                return
            await anyio.sleep(0.05)
    raise RuntimeError(f"{server.name} did not answer HTTP within {READY_LIMIT:g} s (see {server.log})")


def ours_argv(bench: Bench, name: str, port: int, hosts: Sequence[str]) -> list[str]:
    argv = [*bench.ours_args, "serve", "--http", "--port", str(port), "--preload", "off"]
    argv += ["--db", str(bench.tmp / f"{name}.sqlite3")]
    for host in hosts:
        argv += ["--ollama-host", host]
    return argv


# --------------------------------------------------------------------------- clients


class NotificationCounter:
    """A ``message_handler`` for SDK clients: counts the server's notifications by method."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    async def __call__(self, message: Any) -> None:
        method = getattr(message, "method", None)
        if isinstance(method, str):
            self.counts[method] = self.counts.get(method, 0) + 1

    def total(self) -> int:
        return sum(self.counts.values())


@asynccontextmanager
async def http_clients(
    url: str, n: int, counter: NotificationCounter | None = None
) -> AsyncIterator[list[Client]]:
    """``n`` SDK clients over streamable HTTP (handshake era), each with its own HTTP client."""
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(n):
            headers = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
            http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
            transport = streamable_http_client(url, http_client=http)
            clients.append(
                await stack.enter_async_context(Client(transport, mode="legacy", message_handler=counter))
            )
        yield clients


async def run_round(
    clients: list[Client], calls: int, tag: str, continuing: str | None = None
) -> dict[str, Any]:
    """Every client makes ``calls`` sequential chats, all clients at once: a new chat session each
    call, or (``continuing``) client k always continues the session ``{continuing}-{k}``."""
    latencies: list[float] = []
    errors: list[str] = []

    async def worker(k: int, client: Client) -> None:
        for j in range(calls):
            arguments = {"message": f"{tag} {k} {j}"}
            if continuing is not None:
                arguments["session_id"] = f"{continuing}-{k}"
            started = time.perf_counter()
            try:
                result = await client.call_tool("chat", arguments)
            except Exception as exc:  # counted and reported, the round goes on
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if result.is_error:
                errors.append(result.content[0].text if result.content else "isError")  # type: ignore[union-attr]
                continue
            latencies.append((time.perf_counter() - started) * 1e3)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for k, client in enumerate(clients):
            tg.start_soon(worker, k, client)
    wall = time.perf_counter() - started
    return {"latency_ms": latencies, "wall_s": wall, "calls": len(latencies), "errors": errors}
