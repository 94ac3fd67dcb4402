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

import time
from contextlib import AsyncExitStack
from typing import Any

from harness import BENCH, Bench, say
from http_servers import (
    NotificationCounter,
    ServerRefused,
    cpu_seconds,
    fake_process,
    free_port,
    http_clients,
    http_server,
    ours_argv,
    run_round,
)

FLOOR_HTTP = BENCH / "floor_http_server.py"


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
