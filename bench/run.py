"""Performance bench for mcp-ollama against a floor server, all against one loopback fake Ollama.

    python bench/run.py [--quick] [--at REV] [--out FILE] [--keep] [--no-peer] [--no-peer-install]
                        [--http-only | --no-http | --models-only | --replicas-only]

Writes ``bench/results/latest.json`` (committed; ``--quick``: ``bench/results/quick.json``,
git-ignored). ``--at REV`` measures that commit's ``src/`` and ``tests/`` (``git archive``
into a temporary directory, see ``bench/snapshot.py``) instead of the work tree. Row 2d
needs npm ``ollama-mcp@2.1.0`` in ``bench/.node`` (git-ignored); it is npm-installed there
on first use unless ``--no-peer-install``.

Targets (each printed with the target, the measurement, a verdict, and the size of any miss):

1. Cold start, spawn to the ``initialize`` answer: ``python -m mcp_ollama`` within 1.05x the
   floor (``bench/floor_server.py``: a bare ``MCPServer`` with one tool making one httpx POST).
   Raw ``subprocess`` + pipes: write the initialize line at once, time until the answer line.
2. Per-call overhead of ``chat`` with an instant fake: p50 within 1 ms of the floor, over
   sequential calls on one stdio connection each (SDK ``Client``, legacy handshake).
3. 16 concurrent ``chat`` calls on 16 chat sessions (one connection) with a 200 ms model
   latency: wall time under 1.3x one call.
4. Fake's first token written to the client's first progress notification: p50 under 10 ms.
5. ``chat`` continuing a session in a 1,000 sessions x 20 turns store vs a store holding only
   that session: within 10%.
6. Idle RSS after ``initialize``: ours within 10 MiB of the floor.

Rows 2c, 2d, 7, 8 (``bench/npm_peer.py`` describes the peer, ``bench/scenarios.py`` rows 7, 8):

2c. The row-2 calls as a ratio: ours' p50 within 1.15x the floor's; p99 reported.
2d. npm ``ollama-mcp`` 2.1.0 (TypeScript, ``ollama_chat``) in the same interleave: ours' p99
    at most the peer's.
7.  A 12 s answer through a client with a 3 s per-request limit, our answer deadline 2.5 s:
    ``chat`` then ``chat_result`` until complete delivers 100% of the answer (7b: the
    baseline with the deadline off, where the host times out and gets nothing).
8.  First chat after start with a 5 s model load, once the preload is done: within 1.2x a
    warm chat (8b: the first chat made right after ``initialize``, for information).

Rows 9, 9b, 9c, 10 (``bench/http_scenarios.py`` describes their method; about 55 s, in the default
run; ``--http-only`` runs only them and writes ``bench/results/http.json``, ``--no-http`` skips them):

9.  50 SDK clients at once over streamable HTTP, each making sequential ``chat`` calls, a new
    chat session each: ``mcp-ollama serve --http`` (loopback, no tokens file) against an HTTP
    floor (``bench/floor_http_server.py``): ours' p50 within 1.15x the floor's.
9b. Their throughput (at least 0.9x the floor's) and the server process's CPU time per chat.
9c. The same with each client continuing its own session; notifications received per chat (info).
10. Chats/s with two Ollama hosts vs one, each host answering one 200 ms chat at a time, 8
    clients: at least 1.8x.

Rows 11, 11b (``bench/models_scenarios.py``; about 50 s, skipped by ``--http-only``;
``--models-only`` runs only them and writes ``bench/results/models.json``):

11.  16 chats at once on one stdio connection, 8 with llama3:8b and 8 with llama3.1:8b (200 ms to
     the first token, 5 tokens), the fake generating one chat per model at a time (Ollama's
     default), ours with its defaults (``--max-parallel`` 1): wall time within 1.10x the floor's
     (the floor names the model per call); per-chat p50 / p99 and the most chats, models and
     requests at once at the fake, for both.
11b. The same with the fake generating 16 chats per model at once and ours ``--max-parallel 16``.

Row 12 (``bench/replica_scenarios.py``; about 60 s, in the default run unless ``--no-http``, not in
``--http-only``; ``--replicas-only`` runs only it and writes ``bench/results/replicas.json``):

12.  16 SDK clients (2026-07-28 era) over streamable HTTP, each making sequential ``chat`` calls
     (12: a new session each; 12b: continuing its own), a 50 ms fake: one replica on SQLite, one
     on PostgreSQL, two on one PostgreSQL schema behind a round-robin proxy; p50 / p99 and chats/s
     (info; a chat that errs or a replica that serves none is a miss). 12c: CPU per chat.

Method: every comparison interleaves its variants call by call (A B C A B C ...; the cold
starts alternate AB / BA), so drift on this noisy 2-core machine hits all variants alike,
and each compared variant has its own server process, called once per round (a process
that idles longer between calls pays more, so sharing one would favour it). Everything
talks to ONE ``FakeOllama`` (tests/fake_ollama.py) running in a thread of this process.
Server stderr goes to log files in a temporary directory, removed at the end (``--keep``
keeps it). Exit status: 0 when every target passes, 1 when any is missed.

This file is the command line. The rest, in ``bench/`` (none imports ``run.py``; no import cycle):
``harness.py`` (``Config``, ``Bench``, the fake, statistics: shared by all), ``cold_start.py``
(rows 1, 6), ``calls.py`` (rows 2-5), ``npm_peer.py`` (row 2d's peer), ``scenarios.py`` (rows 7,
8), ``http_servers.py`` and ``http_scenarios.py`` (rows 9, 10), ``models_scenarios.py`` (row 11),
``replica_scenarios.py`` and ``rr_proxy.py`` (row 12),
``report.py``, ``report_stdio.py`` and ``report_http.py`` (the table and its rows), ``snapshot.py``
(``--at``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import snapshot  # noqa: E402

if __name__ == "__main__":
    snapshot.reexec_if_asked(__file__)
sys.path.insert(0, str(snapshot.CODE))

# The rest imports src/ and tests/: from snapshot.CODE, so only now (--at re-executes first).
import http_scenarios  # noqa: E402
import models_scenarios  # noqa: E402
import replica_scenarios  # noqa: E402
import report_http  # noqa: E402
import report_stdio  # noqa: E402
import scenarios  # noqa: E402
from calls import bench_async  # noqa: E402
from cold_start import bench_cold_start  # noqa: E402
from harness import DEFAULT, QUICK, Bench, TimedFake, reap, say  # noqa: E402
from npm_peer import PEER_PACKAGE, Peer, find_peer  # noqa: E402
from report import machine, render  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (~90 s)")
    parser.add_argument(
        "--out",
        default=None,
        help="JSON file (default bench/results/latest.json, committed; "
        "--quick: bench/results/quick.json, git-ignored)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (server logs)")
    parser.add_argument(
        "--at", metavar="REV", help="measure this commit's src/ and tests/ (a git archive), not the work tree"
    )
    parser.add_argument("--no-peer", action="store_true", help="skip npm ollama-mcp (row 2d)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--http-only",
        action="store_true",
        help="only the HTTP scenarios (rows 9, 9b, 10; bench/http_scenarios.py)",
    )
    which.add_argument("--no-http", action="store_true", help="skip the HTTP scenarios (rows 9, 9b, 10, 12)")
    which.add_argument(
        "--models-only",
        action="store_true",
        help="only the two-model scenario (rows 11, 11b; bench/models_scenarios.py)",
    )
    which.add_argument(
        "--replicas-only",
        action="store_true",
        help="only the replicas scenario (row 12; bench/replica_scenarios.py)",
    )
    parser.add_argument(
        "--no-peer-install",
        action="store_true",
        help="do not npm install ollama-mcp into bench/.node if missing",
    )
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else DEFAULT
    mode = "quick" if args.quick else "default"
    if args.out is None:
        name = "quick.json" if args.quick else "latest.json"
        if args.http_only:
            name = "http-quick.json" if args.quick else "http.json"
        if args.models_only:
            name = "models-quick.json" if args.quick else "models.json"
        if args.replicas_only:
            name = "replicas-quick.json" if args.quick else "replicas.json"
        args.out = str(REPO / "bench" / "results" / name)
    only = args.http_only or args.models_only or args.replicas_only
    if only:
        mode += (
            ", http only"
            if args.http_only
            else ", two models only"
            if args.models_only
            else ", replicas only"
        )
        args.no_peer = True
    peer = "skipped (--no-peer)" if args.no_peer else find_peer(install=not args.no_peer_install)
    if isinstance(peer, str):
        say(f"peer not run: {peer}")

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    info = machine()
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="mcp-ollama-bench-"))
    (tmp / "logs").mkdir()
    (tmp / "home").mkdir()
    failed = True
    try:
        with TimedFake() as fake:
            bench = Bench(cfg, tmp, fake)
            cold: dict[str, Any] = {}
            res: dict[str, Any] = {}
            scen: dict[str, Any] = {}
            http: dict[str, Any] = {}
            models: dict[str, Any] = {}
            replicas: dict[str, Any] = {}
            try:
                if not only:
                    say("cold start and idle RSS")
                    cold = bench_cold_start(bench)
                    res = anyio.run(bench_async, bench, peer if isinstance(peer, Peer) else None)
                    scen = anyio.run(scenarios.run_scenarios, bench)
                if not args.http_only and not args.replicas_only:
                    models = anyio.run(models_scenarios.bench_models, bench)
                if not args.no_http and not args.models_only and not args.replicas_only:
                    http = anyio.run(http_scenarios.run_http, bench)
                if args.replicas_only or not (args.no_http or only):
                    replicas = anyio.run(replica_scenarios.bench_replicas, bench)
            finally:
                for proc in list(bench.procs):
                    reap(proc)
        elapsed = time.perf_counter() - started
        rows = report_stdio.evaluate(cold, res, cfg, scen, peer) if cold else []
        if models:
            rows += report_stdio.evaluate_models(models)
        if http:
            rows += report_http.evaluate(http)
        if replicas:
            rows += report_http.evaluate_replicas(replicas)
        print(render(rows, info, elapsed, mode), flush=True)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "mode": mode,
            "machine": info,
            "config": dataclasses.asdict(cfg),
            "elapsed_s": elapsed,
            "loadavg_at_end": list(os.getloadavg()),
            "results": rows,
            "peer": {
                "package": f"{PEER_PACKAGE}@{peer.version}",
                "command": ["node", *(str(Path(a).relative_to(REPO)) for a in peer.args)],
            }
            if isinstance(peer, Peer)
            else {"not_run": peer},
            "samples": {
                **({"cold_start": cold} if cold else {}),
                **res,
                **scen,
                **({"two_models": models} if models else {}),
                **http,
                **({"replicas": replicas} if replicas else {}),
            },
        }
        out.write_text(json.dumps(document, indent=1) + "\n")
        print(f"wrote {out}")
        failed = False
        return 0 if all(r["pass"] is not False for r in rows) else 1
    finally:
        if failed:
            for log in sorted((tmp / "logs").glob("*.log")):
                tail = log.read_text(errors="replace")[-2000:]
                if tail.strip():
                    print(f"--- {log.name} (tail)\n{tail}", file=sys.stderr)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; servers stopped, temporary files removed", file=sys.stderr)
        sys.exit(130)
