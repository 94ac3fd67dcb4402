"""The report's shared parts: the machine it ran on, a row of the table, the table itself.

A row is a dict: ``id``, ``metric``, ``reference``, ``ours``, ``target``, ``pass`` (True, False,
or None for information), ``verdict``, and any raw numbers; ``run.py`` prints ``render``'s table
and writes the rows into the results JSON. ``report_stdio.py`` makes rows 1-8 and
11, ``report_http.py`` rows 9 and 10.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import snapshot


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    import mcp_ollama

    return {
        "code": snapshot.code_under_test(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_at_start": list(os.getloadavg()),
        "mcp_sdk": _version("mcp"),
        "httpx": _version("httpx"),
        "mcp_ollama": mcp_ollama.__version__,
    }


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


def verdict(ok: bool, miss: str) -> str:
    return "PASS" if ok else f"MISS by {miss}"


def row_adder(rows: list[dict[str, Any]]) -> Callable[..., None]:
    """``row(tid, metric, reference, ours, target, ok, miss, **data)``, appending to ``rows``.

    ``ok``: True or False for a target, None for information (``miss`` then a note, if any).
    """

    def row(
        tid: str, metric: str, ref: str, ours: str, target: str, ok: bool | None, miss: str, **data: Any
    ) -> None:
        text = "info" if ok is None else verdict(ok, miss)
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

    return row


def render(rows: list[dict[str, Any]], info: dict[str, Any], elapsed: float, mode: str) -> str:
    head = (
        f"mcp-ollama bench ({mode}) | {info['nproc']} cores, {info['cpu_model']} | "
        f"Python {info['python']} | mcp {info['mcp_sdk']} | load {info['loadavg_at_start'][0]:.2f} | "
        f"{elapsed:.0f} s"
    )
    cols = ("#", "metric", "reference", "ours", "target", "verdict")
    table = [[r["id"], r["metric"], r["reference"], r["ours"], r["target"], r["verdict"]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *table, strict=False)]
    line = "  ".join("-" * w for w in widths)
    out = [head, line, "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in table]
    out.append(line)
    return "\n".join(out)
