"""The ``mcp-ollama`` command: flags and environment become ``Settings``, logging goes to stderr.

``mcp-ollama`` (or ``mcp-ollama serve``) serves MCP on stdio; ``mcp-ollama doctor`` checks the
set-up and exits non-zero if anything needs fixing.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

import anyio

from .. import __version__
from ..settings import SETTINGS_SPEC, Settings, SettingsError, load_settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mcp-ollama",
        description="An MCP server (stdio) for local Ollama models: a streaming chat tool with "
        "persistent sessions, sessions as resources, the system prompt as a prompt.",
        epilog="Every option can also be set by the environment variable shown in brackets; "
        "a flag wins over its variable.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "command",
        nargs="?",
        choices=("serve", "doctor"),
        default="serve",
        help="serve (default): speak MCP on stdin/stdout. doctor: check Ollama, the model and the database.",
    )
    for spec in SETTINGS_SPEC:
        if spec.flag is not None:
            parser.add_argument(
                spec.flag, dest=spec.name, metavar=spec.metavar, help=f"{spec.help} [{spec.env}]"
            )
    env_only = [f"{spec.env}: {spec.help}" for spec in SETTINGS_SPEC if spec.flag is None]
    parser.epilog = " ".join([parser.epilog or "", "Set in the environment only:", *env_only])
    return parser


def configure_logging(level: str) -> None:
    """Our log, and the SDK's, to stderr only: stdout carries JSON-RPC."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(vars(args))
    except SettingsError as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    if args.command == "doctor":
        return anyio.run(_doctor, settings)
    return _serve(settings)


def _serve(settings: Settings) -> int:
    from ..server import serve  # the SDK import is the bulk of start-up; doctor does without it

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve, settings)
    return 0


async def _doctor(settings: Settings) -> int:
    from ..doctor import format_report, run_checks

    ok = format_report(await run_checks(settings), print)
    return 0 if ok else 1
