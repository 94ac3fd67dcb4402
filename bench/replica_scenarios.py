"""Row 12 of ``bench/run.py``: two replicas on PostgreSQL behind one address, one replica, and SQLite.

Three variants, each ``mcp-ollama serve --http`` (``--preload off``, ``MCP_OLLAMA_MAX_PARALLEL`` =
the number of clients, an operator token that every client sends) behind a round-robin proxy of
its own (``bench/rr_proxy.py``, a process): ``sqlite_1``, one replica on a SQLite file;
``postgres_1``, one replica on PostgreSQL; ``postgres_2``, two replicas on one PostgreSQL schema,
the proxy sending each request to the next replica. The one-replica variants go through a
one-upstream proxy, so all three pay the same extra hop and differ only in store and replicas.
Each PostgreSQL variant has a fresh schema of its own (chosen through the URL's ``search_path``, as
``tests/postgres.py`` does), dropped at the end.

All three talk to ONE fake Ollama process (``bench/fake_process.py``) answering any number of
chats at once, each ``replicas_latency_s`` to its first token: the model is never the limit.
Each variant gets ``replicas_clients`` SDK clients of the 2026-07-28 era (``Client(...,
mode="auto")``: no handshake, every request stands alone, so any replica may answer it), opened
before anything is timed. A round (``http_servers.run_round``): every client makes
``replicas_calls`` sequential ``chat`` calls, all clients at once; in mode ``new`` a new chat
session each, in mode ``continue`` client k always continues its own session (on two replicas its
turns alternate between them, each replica taking the session's lock in turn). After one
unmeasured warm-up round per variant (pools open, schema migrated, code paths hot), rounds rotate
the variants' order. Measured: each call's latency, chats/s (calls / the round's wall time), the
CPU time per chat of the replicas, of their PostgreSQL backends (``pg_backends_cpu``) and of the
proxy, from the proxy the chats each replica served and the requests that failed, and at the end
the turns each continued session of the two replicas holds. Skipped, with the reason, where
PostgreSQL cannot be reached or the server refuses a ``postgresql://`` store.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from tests.postgres import admin, base_url, schema_url, unreachable

from harness import BENCH, Bench, say
from http_servers import OPERATOR_TOKEN, ServerRefused, cpu_seconds, fake_process, free_port, run_round

PROXY = BENCH / "rr_proxy.py"
READY_LIMIT = 60.0
VARIANTS: dict[str, tuple[str, int]] = {
    "sqlite_1": ("sqlite", 1),
    "postgres_1": ("pg", 1),
    "postgres_2": ("pg", 2),
}
"""Variant: (store, replicas)."""
MODES = ("new", "continue")


# --------------------------------------------------------------------------- PostgreSQL


def pg_unreachable() -> str | None:
    """Why the bench cannot use PostgreSQL, or None when it can (the tests' own check)."""
    why = unreachable()
    return None if why is None else f"PostgreSQL is not reachable at {base_url()}: {why}"


@contextlib.contextmanager
def fresh_schemas(count: int) -> Iterator[list[str]]:
    """``count`` URLs, each whose search_path is a new empty schema, dropped (CASCADE) on exit."""
    names = [f"bench_{uuid.uuid4().hex[:12]}" for _ in range(count)]
    made: list[str] = []
    try:
        for name in names:
            admin(f"CREATE SCHEMA {name}")
            made.append(name)
        yield [schema_url(name) for name in names]
    finally:
        for name in made:
            with contextlib.suppress(Exception):
                admin(f"DROP SCHEMA {name} CASCADE")


def pg_backends_cpu(server_pids: list[int]) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving one of ``server_pids``' connections.

    The servers' TCP sockets (``/proc/PID/fd``) give their local ports, ``/proc/net/tcp`` which of
    them lead to PostgreSQL's port, ``pg_stat_activity`` the backend behind each such port. Only
    loopback IPv4, as the bench uses; a backend that ended before it is asked is missed.
    """
    import psycopg

    inodes: set[str] = set()
    for pid in server_pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    link = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if link.startswith("socket:["):
                        inodes.add(link[8:-1])
    pg_port = psycopg.conninfo.conninfo_to_dict(base_url()).get("port") or 5432
    ports = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, inode = fields[1], fields[2], fields[9]
        if inode in inodes and int(remote.split(":")[1], 16) == int(pg_port):
            ports.append(int(local.split(":")[1], 16))
    if not ports:
        return {}
    with psycopg.connect(base_url(), autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE client_port = ANY(%s)", (ports,)
        ).fetchall()
    cpu: dict[int, float] = {}
    for (pid,) in rows:
        with contextlib.suppress(OSError, ValueError):
            cpu[pid] = run_seconds(pid)
    return cpu


def run_seconds(pid: int) -> float:
    """CPU time of a process in ns precision (``/proc/PID/schedstat``), where ``/proc/PID/stat``
    counts 10 ms ticks: a backend spends a few ms a round, and there are a dozen of them."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except FileNotFoundError:  # a kernel without schedstats
        return cpu_seconds(pid)


# --------------------------------------------------------------------------- processes


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    url: str


@contextlib.contextmanager
def processes() -> Iterator[list[Proc]]:
    """A list to start processes into; at the end all are terminated at once, then waited for."""
    procs: list[Proc] = []
    try:
        yield procs
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.terminate()
        for p in procs:
            try:
                p.proc.wait(15)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(5)


def spawn(bench: Bench, procs: list[Proc], name: str, argv: list[str], env: dict[str, str], url: str) -> Proc:
    with bench.log(name).open("a") as errlog:
        proc = subprocess.Popen(
            [sys.executable, *argv],
            stdin=subprocess.DEVNULL,
            stdout=errlog,
            stderr=errlog,
            env=env,
            cwd=bench.tmp,
        )
    bench.procs.append(proc)  # run.py kills it if the run is interrupted
    procs.append(Proc(name, proc, url))
    return procs[-1]


async def ready(bench: Bench, p: Proc, path: str) -> None:
    """Until ``p`` answers ``GET path`` with 200; ``ServerRefused`` if it exits first."""
    deadline = time.monotonic() + READY_LIMIT
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if p.proc.poll() is not None:
                tail = bench.log(p.name).read_text(errors="replace")[-1500:].strip()
                raise ServerRefused(f"{p.name} exited with status {p.proc.returncode} while starting: {tail}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(p.url + path)).status_code == 200:
                    return
            await anyio.sleep(0.05)
    raise RuntimeError(f"{p.name} did not answer {path} within {READY_LIMIT:g} s (see {bench.log(p.name)})")


def replica_argv(bench: Bench, port: int, db: str, ollama: str) -> list[str]:
    argv = [*bench.ours_args, "serve", "--http", "--port", str(port), "--preload", "off"]
    return [*argv, "--db", db, "--ollama-host", ollama]


@asynccontextmanager
async def modern_clients(url: str, n: int) -> AsyncIterator[list[Client]]:
    """``n`` SDK clients of the 2026-07-28 era over streamable HTTP, each its own HTTP client."""
    async with AsyncExitStack() as stack:
        clients = []
        for _ in range(n):
            http = await stack.enter_async_context(
                create_mcp_http_client(headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"})
            )
            transport = streamable_http_client(url, http_client=http)
            clients.append(await stack.enter_async_context(Client(transport, mode="auto")))
        yield clients


# --------------------------------------------------------------------------- the row


async def bench_replicas(bench: Bench) -> dict[str, Any]:
    cfg = bench.cfg
    n, calls = cfg.replicas_clients, cfg.replicas_calls
    started = time.perf_counter()
    out: dict[str, Any] = {
        "clients": n,
        "calls_per_client": calls,
        "latency_s": cfg.replicas_latency_s,
        "rounds": cfg.replicas_rounds,
        "warmup_calls": cfg.replicas_warmup_calls,
        "era": "2026-07-28 (stateless requests, round-robin per request)",
        "variants": {v: {"store": s, "replicas": k} for v, (s, k) in VARIANTS.items()},
    }
    why = pg_unreachable()
    if why is not None:
        out["skipped"] = why
        say(f"replicas: skipped ({why})")
        return out
    try:
        with fresh_schemas(2) as pg_urls:
            out.update(await _measure(bench, n, calls, {"postgres_1": pg_urls[0], "postgres_2": pg_urls[1]}))
    except ServerRefused as exc:
        out["skipped"] = f"the server did not start on PostgreSQL: {exc}"
    out["elapsed_s"] = time.perf_counter() - started
    say(f"replicas: {out['elapsed_s']:.1f} s")
    return out


async def _measure(bench: Bench, n: int, calls: int, pg: dict[str, str]) -> dict[str, Any]:
    cfg = bench.cfg
    extra = {"MCP_OLLAMA_MAX_PARALLEL": str(n), "MCP_OLLAMA_HTTP_TOKEN": OPERATOR_TOKEN}
    with (
        fake_process(bench, "replicas-fake", first_token_delay=cfg.replicas_latency_s) as fake,
        processes() as procs,
    ):
        replicas: dict[str, list[Proc]] = {}
        proxies: dict[str, Proc] = {}
        for variant, (store, count) in VARIANTS.items():  # start everything, then wait for all
            db = pg[variant] if store == "pg" else str(bench.tmp / f"replicas-{variant}.sqlite3")
            replicas[variant] = []
            for i in range(count):
                port = free_port()
                env = bench.env(bench.tmp / f"replicas-{variant}.sqlite3", fake.url, extra)
                argv = replica_argv(bench, port, db, fake.url)
                url = f"http://127.0.0.1:{port}"
                replicas[variant].append(spawn(bench, procs, f"replicas-{variant}-{i}", argv, env, url))
            port = free_port()
            argv = [str(PROXY), "--port", str(port)]
            for rep in replicas[variant]:
                argv += ["--upstream", rep.url]
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(bench.home)}
            proxies[variant] = spawn(
                bench, procs, f"replicas-proxy-{variant}", argv, env, f"http://127.0.0.1:{port}"
            )
        for variant in VARIANTS:
            for rep in replicas[variant]:
                await ready(bench, rep, "/healthz")
            await ready(bench, proxies[variant], "/proxy/stats")
        async with AsyncExitStack() as stack:
            stats_http = await stack.enter_async_context(httpx.AsyncClient(trust_env=False, timeout=10.0))

            async def served(variant: str) -> list[tuple[int, int]]:
                got = (await stats_http.get(proxies[variant].url + "/proxy/stats")).json()
                return [(u["chats"], u["failed"]) for u in got["upstreams"]]

            clients = {
                v: await stack.enter_async_context(modern_clients(proxies[v].url + "/mcp", n))
                for v in VARIANTS
            }
            for variant in VARIANTS:  # warm-up: pools open, schema migrated, code paths hot
                say(f"replicas: warm-up, {variant}")
                for mode in MODES:
                    cont = f"cont-{variant}" if mode == "continue" else None
                    await run_round(
                        clients[variant], cfg.replicas_warmup_calls, f"warm-{mode}-{variant}", cont
                    )
            samples: dict[str, dict[str, dict[str, Any]]] = {
                m: {v: {"latency_ms": [], "rounds": [], "errors": []} for v in VARIANTS} for m in MODES
            }
            order = list(VARIANTS)
            for r in range(cfg.replicas_rounds):
                for mode in MODES:
                    say(f"replicas: {n} x {calls} chats, {mode} sessions ({r + 1}/{cfg.replicas_rounds})")
                    for variant in order[r % len(order) :] + order[: r % len(order)]:
                        pids = [p.proc.pid for p in replicas[variant]]
                        cpu0 = [cpu_seconds(pid) for pid in pids]
                        proxy_cpu0 = cpu_seconds(proxies[variant].proc.pid)
                        pg0 = pg_backends_cpu(pids) if VARIANTS[variant][0] == "pg" else {}
                        before = await served(variant)
                        cont = f"cont-{variant}" if mode == "continue" else None
                        got = await run_round(clients[variant], calls, f"{mode}-{variant}-{r}", cont)
                        after = await served(variant)
                        cpu = sum(cpu_seconds(pid) - c for pid, c in zip(pids, cpu0, strict=True))
                        pg1 = pg_backends_cpu(pids) if VARIANTS[variant][0] == "pg" else {}
                        sample = samples[mode][variant]
                        sample["latency_ms"] += got["latency_ms"]
                        sample["errors"] += got["errors"][:20]
                        sample["rounds"].append(
                            {
                                "wall_s": got["wall_s"],
                                "calls": got["calls"],
                                "errors": len(got["errors"]),
                                "chats_per_s": got["calls"] / got["wall_s"],
                                "chats_per_replica": [
                                    a[0] - b[0] for a, b in zip(after, before, strict=True)
                                ],
                                "failed_requests": sum(
                                    a[1] - b[1] for a, b in zip(after, before, strict=True)
                                ),
                                "server_cpu_s": cpu,
                                "proxy_cpu_s": cpu_seconds(proxies[variant].proc.pid) - proxy_cpu0,
                                # a backend born during the round spent all its CPU in it
                                "postgres_cpu_s": sum(c - pg0.get(pid, 0.0) for pid, c in pg1.items()),
                                "postgres_backends": len(pg1),
                            }
                        )
            say("replicas: closing clients and servers")
        fake_chats = fake.stats()["chats"]
    return {**samples, "fake_chats": fake_chats, "continued_sessions": continued_sessions(pg["postgres_2"])}


def continued_sessions(url: str) -> dict[str, Any]:
    """How many turns each continued session of the two replicas holds (their turns alternated
    between the replicas): every one should hold all its client's chats."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        got = conn.execute("SELECT turn_count FROM sessions WHERE id LIKE 'cont-%' ORDER BY id").fetchall()
    return {"sessions": len(got), "turns": [t for (t,) in got]}
