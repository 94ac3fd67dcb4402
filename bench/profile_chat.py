"""Where a ``chat`` call's time goes in the server process: sequential calls under a profiler.

    python bench/profile_chat.py [--server ours|floor] [--calls N] [--profiler py-spy|cprofile]
                                 [--at REV] [--top N] [--out DIR]

The same set-up as row 2 of ``bench/run.py`` (one stdio SDK client, legacy handshake, a new
session each call, the loopback fake answering "ok" at once), with the server started under

- ``py-spy record`` (default; attached after the warm-up, so start-up is not in it; sampling at
  2 kHz, only the thread holding the GIL unless ``--all-threads``, so C code that releases
  the GIL (SQLite, socket writes) is not counted; needs ``pip install py-spy`` in the venv,
  measurement only), or
- ``cProfile`` (exact call counts, but its per-call overhead inflates code that makes many
  small Python calls, such as pydantic's Python-side wrappers and anyio).

Prints the top frames by self time and by inclusive time (``function file:line``), both as a
share of the server's on-CPU samples and as microseconds per chat call, and keeps the raw
profile in ``--out`` (default: a temporary directory, printed). Measurement only: nothing here
is imported by the server.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
import snapshot  # noqa: E402

if __name__ == "__main__":
    snapshot.reexec_if_asked(__file__)
sys.path.insert(0, str(snapshot.CODE))

from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402
from tests.fake_ollama import Behavior, FakeOllama  # noqa: E402

SERVERS = {"ours": ["-m", "mcp_ollama"], "floor": [str(REPO / "bench" / "floor_server.py")]}
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*):(?P<line>\d+)\)$")


def short(path: str) -> str:
    for marker in ("site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def children() -> list[int]:
    """PIDs of this process's children (from /proc)."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU time of a process, all its threads (/proc/PID/stat, clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def switches(pid: int) -> tuple[int, int]:
    """(context switches, threads) summed over the process's live threads (/proc/PID/task)."""
    total, threads = 0, 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "status").read_text()
        except OSError:
            continue
        threads += 1
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total, threads


async def drive(
    server_cmd: list[str], env: dict[str, str], calls: int, warmup: int, errlog: Any, attach: list[str] | None
) -> tuple[float, tuple[float, float], int, int]:
    """Warm up, then (``attach``: a py-spy command line lacking ``--pid``) attach the profiler to
    the server and time ``calls`` sequential chats. Start-up and warm-up are not profiled."""
    params = StdioServerParameters(command=server_cmd[0], args=server_cmd[1:], env=env)
    before = set(children())
    async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
        for i in range(warmup):
            await client.call_tool("chat", {"message": f"warm {i}"})
        profiler = None
        (pid,) = set(children()) - before
        if attach is not None:
            pid_flag = "-p" if Path(attach[0]).name == "strace" else "--pid"
            profiler = subprocess.Popen(  # noqa: ASYNC220 (starting it is quick; it runs alongside)
                [*attach, pid_flag, str(pid)], stdout=errlog, stderr=errlog
            )
            await asyncio.sleep(1.0)  # py-spy attached and sampling
        started, cpu, (ctx, _) = time.perf_counter(), cpu_seconds(pid), switches(pid)
        for i in range(calls):
            result = await client.call_tool("chat", {"message": f"hi {i}"})
            if result.is_error:
                raise RuntimeError(result.content[0].text if result.content else "isError")
        (user, system), elapsed = cpu_seconds(pid), time.perf_counter() - started
        cpu = (user - cpu[0], system - cpu[1])
        ctx_now, threads = switches(pid)
        ctx = ctx_now - ctx
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file and exits
            await asyncio.to_thread(profiler.wait, 30)
        return elapsed, cpu, ctx, threads


def collapsed(path: Path) -> collections.Counter[tuple[str, ...]]:
    """py-spy's raw (collapsed) output: ``frame;frame;... count`` per line."""
    stacks: collections.Counter[tuple[str, ...]] = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def label(frame: str) -> str:
    m = FRAME.match(frame)
    return f"{m['func']}  {short(m['file'])}:{m['line']}" if m else frame


def report_pyspy(path: Path, calls: int, top: int, rate: int) -> None:
    stacks = collapsed(path)
    total = sum(stacks.values())
    us_per_sample = 1e6 / rate
    self_time: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    by_file: collections.Counter[str] = collections.Counter()
    for stack, n in stacks.items():
        frames = [f for f in stack if FRAME.match(f)]
        if not frames:
            continue
        leaf = frames[-1]
        self_time[label(leaf)] += n
        m = FRAME.match(leaf)
        assert m is not None
        by_file[short(m["file"])] += n
        for f in set(frames):
            # Inclusive time per function (line numbers stripped: a function appears once).
            m = FRAME.match(f)
            assert m is not None
            incl[f"{m['func']}  {short(m['file'])}"] += n
    print(
        f"\n{total} on-CPU samples at {rate} Hz = {total * us_per_sample / 1e3:.0f} ms, "
        f"{total * us_per_sample / calls:.0f} us per call over {calls} calls"
    )

    def table(title: str, counter: collections.Counter[str]) -> None:
        print(f"\n{title}")
        for name, n in counter.most_common(top):
            print(f"  {n / total * 100:5.1f}%  {n * us_per_sample / calls:7.1f} us/call  {name}")

    table("top self time (leaf frame, function file:line)", self_time)
    table("top self time by file", by_file)
    table("top inclusive time (function file)", incl)
    ours = collections.Counter({k: v for k, v in incl.items() if "mcp_ollama/" in k})
    table("inclusive time in mcp_ollama functions", ours)


def report_cprofile(path: Path, calls: int, top: int) -> None:
    stats = pstats.Stats(str(path))
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats("mcp_ollama", top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", choices=sorted(SERVERS), default="ours")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--profiler", choices=("py-spy", "cprofile", "strace", "none"), default="py-spy")
    parser.add_argument("--rate", type=int, default=1000, help="py-spy samples per second")
    parser.add_argument(
        "--blocking", action="store_true", help="py-spy pauses the server for each sample (slows it a lot)"
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--all-threads", action="store_true", help="py-spy: every non-idle thread, not only the GIL holder"
    )
    parser.add_argument("--out", help="directory for the raw profile (default: a new temporary one)")
    parser.add_argument(
        "--at", metavar="REV", help="profile this commit's src/ (a git archive), not the work tree"
    )
    args = parser.parse_args()
    # --at REV was handled by snapshot.reexec_if_asked before anything from src/ was imported.

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="mcp-ollama-profile-"))
    out.mkdir(parents=True, exist_ok=True)
    home = out / "home"
    home.mkdir(exist_ok=True)
    python = sys.executable
    raw = out / f"{args.server}.{'txt' if args.profiler == 'py-spy' else 'prof'}"
    cmd = [python, *SERVERS[args.server]]
    attach = None
    if args.profiler == "py-spy":
        pyspy = shutil.which("py-spy") or str(Path(python).parent / "py-spy")
        attach = [pyspy, "record", "--format", "raw", "--rate", str(args.rate), "-o", str(raw)]
        if not args.all_threads:
            attach.append("--gil")
        if not args.blocking:
            attach.append("--nonblocking")
    elif args.profiler == "strace":  # system calls per call, all threads (strace -c -f)
        raw = out / f"{args.server}.strace.txt"
        attach = ["strace", "-c", "-f", "-o", str(raw)]
    elif args.profiler == "cprofile":
        cmd = [python, "-m", "cProfile", "-o", str(raw), *SERVERS[args.server]]
    with FakeOllama() as fake:
        fake.default = Behavior(reply="ok")
        env = {
            "OLLAMA_HOST": fake.url,
            "MCP_OLLAMA_DB": str(out / f"{args.server}.sqlite3"),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}),
        }
        with (out / f"{args.server}.stderr.log").open("w") as errlog:
            elapsed, cpu, ctx, threads = asyncio.run(drive(cmd, env, args.calls, args.warmup, errlog, attach))
        # stdin EOF: the server exits 0; the profiler writes its file as its child ends.
        for _ in range(100 if args.profiler != "none" else 0):
            if raw.exists() and raw.stat().st_size:
                break
            time.sleep(0.1)
    print(
        f"{args.server} under {args.profiler}: {args.calls} calls in {elapsed:.2f} s "
        f"= {elapsed / args.calls * 1e3:.3f} ms/call; server CPU (all threads) "
        f"{sum(cpu) / args.calls * 1e3:.3f} ms/call (user {cpu[0] / args.calls * 1e3:.3f}, "
        f"system {cpu[1] / args.calls * 1e3:.3f}); {ctx / args.calls:.1f} context switches/call "
        f"(threads that lived to the end: {threads})"
    )
    if args.profiler == "none":
        return 0
    print(f"raw profile: {raw}")
    if args.profiler == "strace":
        print(raw.read_text())
    elif args.profiler == "py-spy":
        report_pyspy(raw, args.calls, args.top, args.rate)
    else:
        report_cprofile(raw, args.calls, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
