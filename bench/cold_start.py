"""Rows 1 and 6: cold start (spawn to the ``initialize`` answer, and on to the ``tools/list``
answer a host waits for next) and idle RSS, ours vs the floor.

Raw ``subprocess`` + pipes, no SDK: write the initialize line at once, time until the answer
line, send ``notifications/initialized`` and ``tools/list`` as a host does, time until that
answer, read ``VmRSS`` after ``cold_settle_s``, then time the exit after stdin EOF. The two
servers alternate AB / BA, after one unmeasured spawn each.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

from harness import FLOOR_ARGS, OURS_ARGS, Bench, reap

HANDSHAKE_VERSION = "2025-11-25"


def _initialize_line() -> bytes:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": HANDSHAKE_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"},
        },
    }
    return json.dumps(message).encode() + b"\n"


def _read_line(fd: int, timeout: float, buf: bytearray) -> bytes:
    """One line from a pipe fd, or TimeoutError/EOFError; what follows it stays in ``buf``."""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while b"\n" not in buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer line from the server")
            if not sel.select(remaining):
                continue
            data = os.read(fd, 65536)
            if not data:
                raise EOFError(f"server closed stdout; got {bytes(buf)[:200]!r}")
            buf += data
    end = buf.index(b"\n")
    line = bytes(buf[:end])
    del buf[: end + 1]
    return line


def _rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB from /proc/PID/status."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def cold_start_once(bench: Bench, name: str, args: list[str], db: Path) -> dict[str, float]:
    """Spawn, send initialize at once, time the answer; then idle RSS and exit-on-EOF time."""
    init = _initialize_line()
    initialized = json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}).encode() + b"\n"
    list_tools = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}).encode() + b"\n"
    with bench.log(name).open("a") as errlog:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errlog,
            env=bench.env(db),
            cwd=str(bench.tmp),
        )
    bench.procs.append(proc)
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(init)
        proc.stdin.flush()
        pending = bytearray()
        line = _read_line(proc.stdout.fileno(), 30.0, pending)
        answered = time.perf_counter()
        reply = json.loads(line)
        if reply.get("id") != 1 or "result" not in reply:
            raise RuntimeError(f"{name}: unexpected initialize answer {line[:300]!r}")
        proc.stdin.write(initialized + list_tools)
        proc.stdin.flush()
        while json.loads(line := _read_line(proc.stdout.fileno(), 30.0, pending)).get("id") != 2:
            pass  # a notification before the answer
        listed = time.perf_counter()
        if "result" not in json.loads(line):
            raise RuntimeError(f"{name}: unexpected tools/list answer {line[:300]!r}")
        time.sleep(bench.cfg.cold_settle_s)
        rss, hwm = _rss_kib(proc.pid)
        closed = time.perf_counter()
        proc.stdin.close()
        code = proc.wait(10)
        exited = time.perf_counter()
        if code != 0:
            raise RuntimeError(f"{name}: exited {code} after stdin EOF (see {bench.log(name)})")
    finally:
        reap(proc)
        bench.procs.remove(proc)
    return {
        "init_ms": (answered - started) * 1e3,
        "tools_ms": (listed - started) * 1e3,
        "rss_mib": rss / 1024,
        "hwm_mib": hwm / 1024,
        "exit_ms": (exited - closed) * 1e3,
    }


def bench_cold_start(bench: Bench) -> dict[str, dict[str, list[float]]]:
    variants = {
        "floor": (FLOOR_ARGS, bench.tmp / "cold-floor.sqlite3"),
        "ours": (OURS_ARGS, bench.tmp / "cold-ours.sqlite3"),
    }
    # One unmeasured spawn each: page cache, .pyc files, and ours creates its database.
    for name, (args, db) in variants.items():
        cold_start_once(bench, f"cold-{name}", args, db)
    samples: dict[str, dict[str, list[float]]] = {name: {} for name in variants}
    order = list(variants)
    for i in range(bench.cfg.cold_pairs):
        for name in order if i % 2 == 0 else order[::-1]:  # AB BA AB ...
            args, db = variants[name]
            for key, value in cold_start_once(bench, f"cold-{name}", args, db).items():
                samples[name].setdefault(key, []).append(value)
    return samples
