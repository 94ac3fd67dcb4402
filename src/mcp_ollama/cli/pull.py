"""``mcp-ollama pull MODEL``: pull a model onto the Ollama servers, with its progress on stderr.

On a terminal the progress is one line redrawn in place (a bar, the percentage, the bytes); when
stderr is a file or a pipe it is one line per step ("pulling manifest", "pulling 4.7 GB",
"verifying", "writing manifest", "done"), so a log stays readable. The same pull job as the
``pull_model`` tool (``core.pulls``), without MCP. Ctrl-C stops the download (what Ollama has is
kept; pulling again resumes) and exits 130.
"""

from __future__ import annotations

import sys
from typing import TextIO

import anyio

from ..backend.admin import forget, pick_servers
from ..backend.connect import open_pool
from ..config import Settings
from ..core.pull_progress import check_model_name
from ..core.pulls import PullJob, Pulls, relay
from ..core.text import human_bytes
from ..errors import McpOllamaError

INTERRUPTED = 130
BAR_WIDTH = 24


def pull(settings: Settings, model: str, *, server: str | None = None, insecure: bool = False) -> int:
    """Pull ``model`` onto every server (or the one ``server`` names); the exit code."""
    shown = _Progress(sys.stderr)
    try:
        job = anyio.run(_pull, settings, model, server, insecure, shown)
    except McpOllamaError as exc:
        shown.end_line()
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        shown.end_line()
        print("mcp-ollama: stopped; what was downloaded is kept, and pulling again resumes.", file=sys.stderr)
        return INTERRUPTED
    shown.end_line()
    if job.error is not None:
        print(f"mcp-ollama: {job.error}", file=sys.stderr)
        return 1
    sizes = [s.size for s in job.servers.values() if s.size]
    size = f" ({human_bytes(max(sizes))})" if sizes else ""
    print(f"pulled {job.model}{size} onto {', '.join(job.servers)}")
    return 0


async def _pull(
    settings: Settings, model: str, server: str | None, insecure: bool, shown: _Progress
) -> PullJob:
    name = check_model_name(model)
    async with open_pool(settings) as pool, anyio.create_task_group() as tg:
        sources = pick_servers(pool, server)
        job, _ = Pulls().start(name, sources, spawn=tg.start_soon, insecure=insecure)
        tg.start_soon(shown.follow, job)
        await job.wait(None)
        tg.cancel_scope.cancel()
    shown.steps(job)  # the last ones, which the follower may not have woken for
    if job.error is None:
        forget(pool, job.model)
    return job


class _Progress:
    """Progress on ``out``: a bar redrawn in place on a terminal, else a line per step."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.tty = out.isatty()
        self._printed = 0
        self._drawn = False

    async def follow(self, job: PullJob) -> None:
        """Show ``job``'s progress until it ends."""
        if self.tty:
            await relay(job, self._draw, 0.1)
            return
        while not job.done:
            changed = job.changed
            self.steps(job)
            await changed.wait()

    def steps(self, job: PullJob) -> None:
        """Off a terminal: print the steps not printed yet, one line each."""
        if self.tty:
            return
        for step in job.steps[self._printed :]:
            print(step, file=self._out, flush=True)
        self._printed = len(job.steps)

    async def _draw(self, value: float, total: float | None, message: str) -> None:
        line = message
        if total:
            filled = min(BAR_WIDTH, int(BAR_WIDTH * value / total))
            bar = "█" * filled + "░" * (BAR_WIDTH - filled)
            line = f"{message} {bar} {human_bytes(int(value))}/{human_bytes(int(total))}"
        self._out.write("\r\x1b[K" + line)
        self._out.flush()
        self._drawn = True

    def end_line(self) -> None:
        if self._drawn:
            self._out.write("\n")
            self._out.flush()
            self._drawn = False
