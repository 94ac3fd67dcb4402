"""The ``mcp-ollama`` command: subcommands and dispatch; flags and environment become ``Settings``.

``mcp-ollama`` with no command (or ``serve``) speaks MCP on stdio, as hosts run it; ``ask``,
``sessions`` and ``models`` use the same store and chat core from a terminal, with no MCP in
between; ``doctor`` checks the set-up. Each command lives in its own module, imported only when
it runs, so ``--help`` and ``ask`` never pay for the MCP SDK. Every settings flag is accepted
before or after the command. An unknown option is named, with the closest known one.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Collection, Sequence
from typing import Any

from .. import __version__
from ..config import SETTINGS_SPEC, Settings, SettingsError, load_settings
from .db import add_db_command, run_db_command
from .model_commands import MODEL_COMMANDS, add_model_commands, run_model_command
from .parser import CommandParser, find_misuse
from .token_commands import add_tokens_command, run_tokens_command

__all__ = ["CommandParser", "build_parser", "configure_logging", "find_misuse", "main"]


def _add_settings(parser: CommandParser, shown: Collection[str] | None = None) -> None:
    """Every setting's flag on ``parser``; help for those in ``shown`` only (None: all).

    ``SUPPRESS`` as the default: a flag given before the command is not overwritten by the
    command's own default, and a flag not given at all leaves its environment variable in force.
    """
    group = parser.add_argument_group(
        "settings",
        "Each also read from the environment variable in brackets; a flag wins over its variable."
        if shown is None
        else "Every setting flag of 'mcp-ollama --help' works here too.",
    )
    for spec in SETTINGS_SPEC:
        if spec.flag is None:
            continue
        visible = shown is None or spec.name in shown
        parser.option(
            spec.flag,
            group=group,
            dest=spec.name,
            metavar=spec.metavar,
            default=argparse.SUPPRESS,
            action="append" if spec.name == "ollama_url" else "store",  # several Ollama servers
            help=f"{spec.help} [{spec.env}]" if visible else argparse.SUPPRESS,
        )


def build_parser() -> CommandParser:
    env_only = [f"{spec.env}: {spec.help}" for spec in SETTINGS_SPEC if spec.flag is None]
    parser = CommandParser(
        prog="mcp-ollama",
        usage="%(prog)s [SETTINGS] [COMMAND] ...",
        description="An MCP server (stdio) for local Ollama models: a streaming chat tool with "
        "persistent sessions, sessions as resources, the system prompt as a prompt. "
        "With no command it serves MCP on stdin/stdout, as MCP hosts run it.",
        epilog=" ".join(
            [
                "Every setting can also be set by the environment variable shown in brackets; "
                "a flag wins over its variable. Setting flags work before or after the command.",
                "Set in the environment only:",
                *env_only,
            ]
        ),
    )
    # The package's name, as an upgrade names it; both console scripts print the same.
    parser.option("--version", action="version", version=f"mcp-server-ollama {__version__}")
    _add_settings(parser)
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    serve = parser.command(
        commands,
        "serve",
        help="speak MCP on stdin/stdout (the default): what an MCP host runs",
        usage="%(prog)s [SETTINGS]",
        description="Speak MCP (JSON-RPC) on stdin/stdout until the host closes stdin. With --http, "
        "serve MCP over streamable HTTP at http://BIND:PORT/mcp instead (plus POST /chat and /healthz).",
    )
    serve.option(
        "--http",
        dest="serve_http",
        action="store_true",
        help="serve MCP over streamable HTTP (--bind, --port, --tokens-file) instead of stdio",
    )
    serve.option(
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        default=[],
        metavar="HOST",
        help="with --http: a host name clients (or your reverse proxy) use, accepted in Host and Origin "
        "headers besides loopback and the bind address; repeat for several",
    )
    _add_settings(serve)
    doctor = parser.command(
        commands,
        "doctor",
        help="check Ollama, the model and the database; changes nothing on disk",
        usage="%(prog)s [SETTINGS]",
        description="Check that Ollama answers, the default model is pulled and loads, and the "
        "session database is usable; say how to fix what is not. Exits 1 if a check fails.",
    )
    _add_settings(doctor)
    _add_ask(parser, commands)
    _add_sessions(parser, commands)
    add_tokens_command(parser, commands, _add_settings)  # tokens add, list, revoke
    models = parser.command(
        commands,
        "models",
        help="list the models pulled in Ollama",
        description="The models pulled in Ollama, one per line: name, size, family, parameters, "
        "quantization.",
    )
    _add_settings(models, shown={"ollama_url"})
    add_model_commands(parser, commands, _add_settings)  # pull, ps, unload, embed
    add_db_command(parser, commands)  # db copy
    return parser


def _add_ask(parser: CommandParser, commands: argparse._SubParsersAction[Any]) -> None:
    ask = parser.command(
        commands,
        "ask",
        help="send one message and stream the answer (no MCP host needed)",
        usage="%(prog)s MESSAGE [--session ID [--new]] [--model NAME] [--json] [SETTINGS]",
        description="Send MESSAGE to the model and stream the answer to stdout as it arrives; the "
        "session id goes to stderr. Pass it back with --session to continue the conversation. "
        "Same store and chat core as the server, without MCP. Ctrl-C stops the model and "
        "stores nothing (exit 130).",
        epilog='Example: mcp-ollama ask "Hello, what is MCP?", then '
        'mcp-ollama ask "Explain in Chinese." --session ID',
    )
    ask.option("message", metavar="MESSAGE", help="what to say; '-' reads it from stdin")
    ask.option(
        "--session",
        dest="ask_session",
        metavar="ID",
        help="continue this session (its recent turns go with the message); default: a new session",
    )
    ask.option(
        "--new",
        dest="ask_new",
        action="store_true",
        help="with --session: start a new session with that id (an unknown id is refused without it)",
    )
    ask.option(
        "--json",
        dest="ask_json",
        action="store_true",
        help="print one JSON object at the end (session_id, model, answer, usage) instead of streaming",
    )
    _add_settings(ask, shown={"model"})


def _add_sessions(parser: CommandParser, commands: argparse._SubParsersAction[Any]) -> None:
    sessions = parser.command(
        commands,
        "sessions",
        help="list, show, export or delete stored sessions",
        description="The stored chat sessions (the same database the server uses).",
    )
    _add_settings(sessions, shown={"db_path"})
    actions = sessions.add_subparsers(dest="sessions_command", title="actions", metavar="ACTION")
    listing = sessions.command(
        actions,
        "list",
        help="sessions, most recently active first (the default)",
        description="One line per session: id, last active, turns, model, title.",
    )
    listing.option(
        "--limit", dest="sessions_limit", type=int, default=50, metavar="N", help="at most N (default 50)"
    )
    _add_settings(listing, shown={"db_path"})
    show = sessions.command(
        actions, "show", help="a session's transcript", description="Print a session's transcript."
    )
    show.option("session_id", metavar="ID", help="the session's id, as sessions list shows it")
    _add_settings(show, shown={"db_path"})
    export = sessions.command(
        actions,
        "export",
        help="a session as Markdown or JSON, for a file",
        description="Print the session as a Markdown transcript or a JSON document.",
    )
    export.option("session_id", metavar="ID", help="the session's id, as sessions list shows it")
    export.option(
        "--format",
        dest="export_format",
        choices=("md", "json"),
        default="md",
        help="md (default) or json",
    )
    _add_settings(export, shown={"db_path"})
    delete = sessions.command(
        actions, "delete", help="delete a session and its messages", description="Delete a session."
    )
    delete.option("session_id", metavar="ID", help="the session's id, as sessions list shows it")
    _add_settings(delete, shown={"db_path"})


def configure_logging(level: str) -> None:
    """Our log, and the SDK's, to stderr only: stdout carries JSON-RPC (or the answer)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words:  # how hosts start it: the parser (about 10 ms to build) has nothing to parse
        return _start(argparse.Namespace(command=None), {})
    parser = build_parser()
    misuse = find_misuse(parser, words)
    if misuse is not None:
        where, message = misuse
        where.error(message)
    args = parser.parse_args(words)
    return _start(args, {k: ",".join(v) if isinstance(v, list) else v for k, v in vars(args).items()})


def _start(args: argparse.Namespace, flags: dict[str, Any]) -> int:
    """Settings from ``flags`` and the environment, then the command."""
    try:
        settings = load_settings(flags)
    except SettingsError as exc:
        print(f"mcp-ollama: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        return _run(args.command or "serve", settings, args)
    except KeyboardInterrupt:  # before or after a command's own handling of Ctrl-C
        return 130


def _run(command: str, settings: Settings, args: argparse.Namespace) -> int:
    if command == "ask":
        from .ask import ask

        return ask(
            settings, args.message, session_id=args.ask_session, as_json=args.ask_json, new=args.ask_new
        )
    if command == "sessions":
        from .sessions import sessions

        return sessions(
            settings,
            args.sessions_command or "list",
            session_id=getattr(args, "session_id", None),
            export_format=getattr(args, "export_format", "md"),
            limit=getattr(args, "sessions_limit", 50),
        )
    if command == "db":
        return run_db_command(settings, args)
    if command in MODEL_COMMANDS:
        return run_model_command(command, settings, args)
    if command == "models":
        from .models import models

        return models(settings)
    if command == "tokens":
        return run_tokens_command(settings, args)
    if command == "serve" and getattr(args, "serve_http", False):
        from .http import serve_http

        return serve_http(settings, args.allowed_hosts)
    if command == "doctor":
        from ..config import database_origin
        from .doctor import doctor

        return doctor(settings, database_origin(getattr(args, "db_path", None)))
    from .serve import serve

    return serve(settings)
