"""A ``FakeOllama`` (tests/fake_ollama.py) in a process of its own, for the HTTP scenarios.

    python bench/fake_process.py --code DIR [--reply TEXT] [--first-token-delay S] [--parallel N]

Prints ``{"url": ...}`` on stdout once it listens. Then reads stdin: a ``stats`` line gets a JSON
line back (``chats``: chat requests so far, ``max_active``: the most answered at once); end of
input stops it. In its own process, so that 50 SDK clients in the bench's event loop do not share
a GIL with it (Ollama is a process of its own too).

``--parallel N``: answer at most N chats at once, the rest wait their turn in arrival order,
like Ollama with ``OLLAMA_NUM_PARALLEL=N`` (its default is 1). 0: no limit (FakeOllama's own).
``--code DIR``: where ``tests/fake_ollama.py`` is (the work tree, or a ``--at`` snapshot).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--code", required=True)
    parser.add_argument("--reply", default="ok")
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    parser.add_argument("--parallel", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, args.code)
    from tests.fake_ollama import Behavior, FakeOllama

    class LimitedFake(FakeOllama):
        def __init__(self, parallel: int, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.parallel = parallel
            self.active_chats = 0
            self.max_active = 0
            self._gate: asyncio.Semaphore | None = None  # made in the fake's own loop

        async def _chat(self, conn: Any, request: Any) -> bool:
            if self.parallel <= 0:
                return await self._counted(conn, request)
            if self._gate is None:
                self._gate = asyncio.Semaphore(self.parallel)  # FIFO: waiters wake in order
            async with self._gate:
                return await self._counted(conn, request)

        async def _counted(self, conn: Any, request: Any) -> bool:
            self.active_chats += 1
            self.max_active = max(self.max_active, self.active_chats)
            try:
                return await super()._chat(conn, request)
            finally:
                self.active_chats -= 1

    fake = LimitedFake(args.parallel)
    with fake:
        fake.default = Behavior(reply=args.reply, first_token_delay=args.first_token_delay)
        print(json.dumps({"url": fake.url}), flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                stats = {"chats": len(fake.chat_requests), "max_active": fake.max_active}
                print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
