"""HTTP scenarios for ``bench/run.py``: ``mcp-ollama serve --http`` under many clients, and two Ollama hosts.

H. 50 clients over streamable HTTP. ``mcp-ollama serve --http`` (loopback, NO tokens file: no
   bearer-token check, as the floor has none, so every client is the principal ``local``;
   ``--preload off``, its own ``--db``) against the HTTP floor (``bench/floor_http_server.py``:
   the stdio floor's one-tool ``MCPServer`` behind the SDK's ``streamable_http_app`` under
   uvicorn). Each variant gets ``http_clients`` SDK clients (``Client(streamable_http_client(...),
   mode="legacy")``, one MCP session and one HTTP connection pool each), opened before anything
   is timed. A round: every client makes ``http_calls`` sequential ``chat`` calls, all clients at
   once. Variants: the floor; ours starting a new chat session on every call (no ``session_id``,
   the judged one); ours with each client continuing a session of its own (info). Each has its
   own server process; rounds rotate the order, after an unmeasured warm-up round each. The fake
   answers any number of chats at once, as the floor assumes, so ours runs with
   ``MCP_OLLAMA_MAX_PARALLEL`` = the number of clients (its default, 1, Ollama's own default,
   would queue the chats in the server). Measured: each call's latency (p50 / p99 over all
   rounds), throughput (calls / the round's wall time), the server process's CPU time per call
   (``/proc/PID/stat``, user + system), and the notifications the clients receive.

M. Two Ollama hosts against one. Two fakes, each answering one chat at a time (the rest wait
   in arrival order, like Ollama's default ``OLLAMA_NUM_PARALLEL=1``), each chat taking
   ``hosts_latency_s``; the server is told so (``MCP_OLLAMA_MAX_PARALLEL=1``). One server started
   with ``--ollama-host A``, one with ``--ollama-host A --ollama-host B``; ``hosts_clients``
   clients make ``hosts_calls`` chats each, all at once; throughput in chats/s, variants
   alternating. With the hosts' parallelism the limit, two hosts should give nearly twice the
   throughput. Skipped, with the reason, when the server refuses to start with two hosts or sends
   every chat to one of them (multi-host not wired in).

Both scenarios run their fakes in processes of their own (``bench/fake_process.py``): the bench
process is busy with the clients, and a fake in one of its threads would share their GIL.
Server stderr goes to the bench's log directory.
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
from typing import TYPE_CHECKING, Any

import anyio
import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

import snapshot

if TYPE_CHECKING:
    from run import Bench

BENCH = Path(__file__).resolve().parent
FLOOR_HTTP = BENCH / "floor_http_server.py"
FAKE_PROCESS = BENCH / "fake_process.py"
READY_LIMIT = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


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
    extra = {"MCP_OLLAMA_MAX_PARALLEL": str(max_parallel)} if max_parallel is not None else None
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
            http = await stack.enter_async_context(create_mcp_http_client())
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


# --------------------------------------------------------------------------- H: 50 clients


async def bench_http_clients(bench: Bench) -> dict[str, Any]:
    cfg = bench.cfg
    n, calls = cfg.http_clients, cfg.http_calls
    samples: dict[str, Any] = {}
    with fake_process(bench, "http-fake") as fake:
        async with AsyncExitStack() as stack:
            fport, oport, cport = free_port(), free_port(), free_port()
            servers = {
                "floor": await stack.enter_async_context(
                    http_server(bench, "http-floor", [str(FLOOR_HTTP), str(fport)], fport, fake.url)
                ),
                "ours": await stack.enter_async_context(
                    http_server(
                        bench,
                        "http-ours",
                        ours_argv(bench, "http-ours", oport, [fake.url]),
                        oport,
                        fake.url,
                        max_parallel=n,
                    )
                ),
                "ours_continue": await stack.enter_async_context(
                    http_server(
                        bench,
                        "http-cont",
                        ours_argv(bench, "http-cont", cport, [fake.url]),
                        cport,
                        fake.url,
                        max_parallel=n,
                    )
                ),
            }
            counters = {name: NotificationCounter() for name in servers}
            clients = {
                name: await stack.enter_async_context(http_clients(server.mcp_url, n, counters[name]))
                for name, server in servers.items()
            }
            samples = {name: {"latency_ms": [], "rounds": [], "errors": []} for name in servers}
            order = list(servers)
            cont = {name: ("cont" if name == "ours_continue" else None) for name in servers}
            for name in order:  # warm-up: code paths hot, the server's pool to the fake open
                await run_round(clients[name], cfg.http_warmup_calls, f"warm-{name}", cont[name])
            for r in range(cfg.http_rounds):
                for name in order[r % len(order) :] + order[: r % len(order)]:
                    say(f"http: {n} clients x {calls} chats, {name} ({r + 1}/{cfg.http_rounds})")
                    pid = servers[name].proc.pid
                    cpu0 = cpu_seconds(pid)
                    seen0 = counters[name].total()
                    got = await run_round(clients[name], calls, f"{name}-{r}", cont[name])
                    cpu = cpu_seconds(pid) - cpu0
                    samples[name]["latency_ms"] += got["latency_ms"]
                    samples[name]["errors"] += got["errors"][:20]
                    samples[name]["rounds"].append(
                        {
                            "wall_s": got["wall_s"],
                            "calls": got["calls"],
                            "errors": len(got["errors"]),
                            "server_cpu_s": cpu,
                            "notifications_received": counters[name].total() - seen0,
                            "chats_per_s": got["calls"] / got["wall_s"],
                        }
                    )
            notifications = {name: dict(c.counts) for name, c in counters.items()}
    return {
        "clients": n,
        "calls_per_client": calls,
        "auth": "none (loopback, no tokens file): every client is the principal 'local'",
        "notifications_received": notifications,
        **samples,
    }


# --------------------------------------------------------------------------- M: two hosts


async def bench_two_hosts(bench: Bench) -> dict[str, Any]:
    cfg = bench.cfg
    n, calls, latency = cfg.hosts_clients, cfg.hosts_calls, cfg.hosts_latency_s
    out: dict[str, Any] = {"clients": n, "calls_per_client": calls, "latency_s": latency, "fake_parallel": 1}
    with (
        fake_process(bench, "hosts-fake-a", first_token_delay=latency, parallel=1) as fa,
        fake_process(bench, "hosts-fake-b", first_token_delay=latency, parallel=1) as fb,
    ):
        async with AsyncExitStack() as stack:
            p1, p2 = free_port(), free_port()
            try:
                one = await stack.enter_async_context(
                    http_server(bench, "hosts-1", ours_argv(bench, "hosts-1", p1, [fa.url]), p1, fa.url, 1)
                )
                two = await stack.enter_async_context(
                    http_server(
                        bench, "hosts-2", ours_argv(bench, "hosts-2", p2, [fa.url, fb.url]), p2, fa.url, 1
                    )
                )
            except ServerRefused as exc:
                out["skipped"] = f"the server did not start with two --ollama-host flags: {exc}"
                return out
            clients = {
                "one_host": await stack.enter_async_context(http_clients(one.mcp_url, n)),
                "two_hosts": await stack.enter_async_context(http_clients(two.mcp_url, n)),
            }
            order = list(clients)
            for name in order:  # warm-up: one chat per client
                await run_round(clients[name], 1, f"warm-{name}")
            rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in order}
            for r in range(cfg.hosts_rounds):
                for name in order if r % 2 == 0 else order[::-1]:
                    say(f"two hosts: {n} clients x {calls} chats, {name} ({r + 1}/{cfg.hosts_rounds})")
                    before = (fa.stats()["chats"], fb.stats()["chats"])
                    got = await run_round(clients[name], calls, f"{name}-{r}")
                    after = (fa.stats()["chats"], fb.stats()["chats"])
                    rounds[name].append(
                        {
                            "wall_s": got["wall_s"],
                            "calls": got["calls"],
                            "errors": got["errors"][:20],
                            "chats_per_s": got["calls"] / got["wall_s"],
                            "chats_on_a": after[0] - before[0],
                            "chats_on_b": after[1] - before[1],
                            "latency_ms": got["latency_ms"],
                        }
                    )
            out["rounds"] = rounds
            out["fake_max_active"] = [fa.stats()["max_active"], fb.stats()["max_active"]]
            if all(x["chats_on_b"] == 0 for x in rounds["two_hosts"]):
                out["skipped"] = (
                    "the server accepted two --ollama-host flags but sent every chat to one host "
                    f"({sum(x['chats_on_a'] for x in rounds['two_hosts'])} to A, 0 to B): "
                    "multi-host not wired in"
                )
    return out


async def run_http(bench: Bench) -> dict[str, Any]:
    started = time.perf_counter()
    clients = await bench_http_clients(bench)
    clients["elapsed_s"] = time.perf_counter() - started
    say(f"http clients: {clients['elapsed_s']:.1f} s")
    started = time.perf_counter()
    hosts = await bench_two_hosts(bench)
    hosts["elapsed_s"] = time.perf_counter() - started
    say(f"two hosts: {hosts['elapsed_s']:.1f} s")
    return {"http_clients": clients, "two_hosts": hosts}


# --------------------------------------------------------------------------- report


def evaluate(res: dict[str, Any], pct: Any, summary: Any) -> list[dict[str, Any]]:
    """Rows in ``run.py``'s format (``pct``, ``summary``: its statistics helpers)."""
    rows: list[dict[str, Any]] = []

    def row(
        tid: str, metric: str, ref: str, ours: str, target: str, ok: bool | None, miss: str, **data: Any
    ) -> None:
        text = "info" if ok is None else ("PASS" if ok else f"MISS by {miss}")
        if ok is None and miss:
            text = f"info ({miss})"
        rows.append(
            {
                "id": tid,
                "metric": metric,
                "reference": ref,
                "ours": ours,
                "target": target,
                "pass": ok,
                "verdict": text,
                **data,
            }
        )

    hc = res["http_clients"]
    fl, ou = hc["floor"]["latency_ms"], hc["ours"]["latency_ms"]
    n, calls = hc["clients"], hc["calls_per_client"]
    errors = sum(x["errors"] for x in hc["floor"]["rounds"]), sum(x["errors"] for x in hc["ours"]["rounds"])
    if not fl or not ou:
        first_errors = (hc["floor"]["errors"] + hc["ours"]["errors"])[:2]
        row(
            "9",
            f"HTTP, {n} clients: chat per call",
            "no calls",
            "no calls",
            "p50 <= 1.15x floor",
            False,
            f"errors: floor {errors[0]}, ours {errors[1]}: {first_errors}",
        )
        return rows
    f50, f99, o50, o99 = pct(fl, 50), pct(fl, 99), pct(ou, 50), pct(ou, 99)
    r50 = o50 / f50
    row(
        "9",
        f"HTTP, {n} clients x {calls} chats at once (new session each): p50 / p99 per call ({len(ou)} calls)",
        f"floor {f50:.1f} / {f99:.1f} ms",
        f"{o50:.1f} / {o99:.1f} ms = p50 {r50:.2f}x, p99 {o99 / f99:.2f}x",
        "p50 <= 1.15x floor",
        r50 <= 1.15 and not any(errors),
        f"{r50 - 1.15:.2f}x ({o50 - 1.15 * f50:.1f} ms over 1.15x)"
        + (f"; errors: floor {errors[0]}, ours {errors[1]}" if any(errors) else ""),
        floor_stats=summary(fl),
        ours_stats=summary(ou),
        p50_ratio=r50,
    )

    def rate(name: str) -> float:
        rounds = hc[name]["rounds"]
        return float(sum(x["calls"] for x in rounds) / sum(x["wall_s"] for x in rounds))

    def cpu_ms(name: str) -> float:
        rounds = hc[name]["rounds"]
        return float(sum(x["server_cpu_s"] for x in rounds) / sum(x["calls"] for x in rounds) * 1e3)

    fr, orate = rate("floor"), rate("ours")
    fc, oc = cpu_ms("floor"), cpu_ms("ours")
    row(
        "9b",
        f"HTTP, {n} clients: throughput; server CPU per chat",
        f"floor {fr:.0f} chats/s; {fc:.2f} ms",
        f"{orate:.0f} chats/s ({orate / fr:.2f}x); {oc:.2f} ms ({oc / fc:.2f}x)",
        "",
        None,
        f"errors: floor {errors[0]}, ours {errors[1]}" if any(errors) else "",
        floor_chats_per_s=fr,
        ours_chats_per_s=orate,
        floor_cpu_ms_per_chat=fc,
        ours_cpu_ms_per_chat=oc,
    )

    if hc.get("ours_continue", {}).get("latency_ms"):
        co = hc["ours_continue"]["latency_ms"]
        c50, c99 = pct(co, 50), pct(co, 99)
        notes = {
            name: sum(x.get("notifications_received", 0) for x in hc[name]["rounds"])
            / max(1, sum(x["calls"] for x in hc[name]["rounds"]))
            for name in ("floor", "ours", "ours_continue")
        }
        row(
            "9c",
            f"HTTP, {n} clients, each continuing its own session: p50 / p99; CPU; "
            "notifications received per chat (new session / continuing)",
            f"floor {f50:.1f} / {f99:.1f} ms",
            f"{c50:.1f} / {c99:.1f} ms = p50 {c50 / f50:.2f}x; {rate('ours_continue'):.0f} chats/s; "
            f"{cpu_ms('ours_continue'):.2f} ms CPU; {notes['ours']:.1f} / {notes['ours_continue']:.1f}",
            "",
            None,
            "",
            ours_stats=summary(co),
            notifications_per_chat=notes,
        )

    th = res["two_hosts"]
    label = (
        f"chats/s, 1 Ollama host vs 2 (each 1 chat at a time, {th['latency_s'] * 1e3:.0f} ms a chat), "
        f"{th['clients']} clients x {th['calls_per_client']}"
    )
    if "rounds" not in th or "skipped" in th:
        row("10", label, "-", "skipped", ">= 1.8x", None, th.get("skipped", "not run"))
        return rows

    def hrate(name: str) -> float:
        rounds = th["rounds"][name]
        return float(sum(x["calls"] for x in rounds) / sum(x["wall_s"] for x in rounds))

    one, two = hrate("one_host"), hrate("two_hosts")
    split = [(x["chats_on_a"], x["chats_on_b"]) for x in th["rounds"]["two_hosts"]]
    herr = sum(len(x["errors"]) for rs in th["rounds"].values() for x in rs)
    ratio = two / one
    row(
        "10",
        label,
        f"1 host {one:.2f}/s (ideal {1 / th['latency_s']:.1f})",
        f"2 hosts {two:.2f}/s = {ratio:.2f}x; split A/B {', '.join(f'{a}/{b}' for a, b in split)}",
        ">= 1.8x",
        ratio >= 1.8 and herr == 0,
        f"{1.8 - ratio:.2f}x" + (f"; {herr} errors" if herr else ""),
        one_host_chats_per_s=one,
        two_hosts_chats_per_s=two,
        ratio=ratio,
    )
    return rows
