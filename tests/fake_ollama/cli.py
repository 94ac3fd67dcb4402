"""The command line: ``python -m tests.fake_ollama`` (see the package docstring)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .models import READY_MODELS, FakeModel
from .server import FakeOllama


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve a fake Ollama on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (default: any free port)")
    parser.add_argument("--token-delay", type=float, default=0.0, help="seconds between streamed tokens")
    parser.add_argument("--load-delay", type=float, default=0.0, help="seconds loading a model takes")
    parser.add_argument("--reply", default=None, help="answer every chat with this text")
    parser.add_argument(
        "--models",
        default=None,
        help="comma-separated ready-made models to serve, by short or full name "
        f"({', '.join(READY_MODELS)}), or 'all' (default: llama3 only)",
    )
    parser.add_argument(
        "--tokenizer",
        action="store_true",
        help="count prompt tokens as a tokenizer would and drop what does not fit num_ctx",
    )
    args = parser.parse_args(argv)
    models: list[FakeModel] | None = None
    if args.models is not None:
        by_name = {**READY_MODELS, **{m.name: m for m in READY_MODELS.values()}}
        wanted = [n.strip() for n in args.models.split(",") if n.strip()]
        if wanted == ["all"]:
            wanted = list(READY_MODELS)
        unknown = [n for n in wanted if n not in by_name]
        if unknown or not wanted:
            parser.error(
                f"unknown model(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(READY_MODELS)}"
            )
        models = list(dict.fromkeys(by_name[n] for n in wanted))
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)

    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with FakeOllama(
        port=args.port,
        models=models,
        reply=args.reply,
        token_delay=args.token_delay,
        load_delay=args.load_delay,
        tokenizer=args.tokenizer,
    ) as fake:
        print(f"listening on {fake.url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0
