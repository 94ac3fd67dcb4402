"""The model commands' arguments (``pull``, ``ps``, ``unload``, ``embed``) and their dispatch.

Kept apart from ``cli/__init__`` so the parser module stays small; each command's own module is
imported only when it runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Collection
from typing import Any

from ..config import Settings
from .parser import CommandParser

MODEL_COMMANDS = ("pull", "ps", "unload", "embed")
AddSettings = Callable[[Any, Collection[str] | None], None]
"""``cli._add_settings``: every setting's flag on a command, help for those named."""


def add_model_commands(
    parser: CommandParser, commands: argparse._SubParsersAction[Any], add_settings: AddSettings
) -> None:
    """``pull``, ``ps``, ``unload`` and ``embed`` on ``parser``."""
    pull = parser.command(
        commands,
        "pull",
        help="pull a model into Ollama, with a progress bar",
        usage="%(prog)s MODEL [--server URL] [--insecure] [SETTINGS]",
        description="Pull MODEL onto every Ollama server (or the one --server names), showing the "
        "progress on stderr: a bar on a terminal, one line per step otherwise. Ctrl-C stops the "
        "download; what was downloaded is kept and pulling again resumes.",
    )
    pull.option("pull_model", metavar="MODEL", help="the model and tag, e.g. llama3.1:8b")
    pull.option("--server", dest="pull_server", metavar="URL", help="only this Ollama server")
    pull.option("--insecure", dest="pull_insecure", action="store_true", help="allow a registry without TLS")
    add_settings(pull, {"ollama_url"})
    ps = parser.command(
        commands,
        "ps",
        help="the models loaded in memory",
        description="The models each Ollama server holds in memory: size, CPU/GPU share, context "
        "window, and when it will be unloaded.",
    )
    add_settings(ps, {"ollama_url"})
    unload = parser.command(
        commands,
        "unload",
        help="unload a model from memory",
        usage="%(prog)s MODEL [SETTINGS]",
        description="Unload MODEL from every Ollama server holding it (keep_alive 0), freeing its memory.",
    )
    unload.option("unload_model", metavar="MODEL", help="the model to unload")
    add_settings(unload, {"ollama_url"})
    embed = parser.command(
        commands,
        "embed",
        help="embedding vectors for texts",
        usage="%(prog)s TEXT... [--json] [--dimensions N] [SETTINGS]",
        description="Embed each TEXT with the embedding model (--embed-model) and print one vector "
        "per line, numbers separated by spaces; '-' reads a text from stdin.",
    )
    embed.option("embed_texts", metavar="TEXT", nargs="+", help="a text to embed; '-' reads stdin")
    embed.option("--json", dest="embed_json", action="store_true", help="print one JSON object instead")
    embed.option("--dimensions", dest="embed_dimensions", type=int, metavar="N", help="shorten each vector")
    add_settings(embed, {"embed_model", "ollama_url"})


def run_model_command(command: str, settings: Settings, args: argparse.Namespace) -> int:
    """Run one of ``MODEL_COMMANDS``; the exit code."""
    if command == "pull":
        from .pull import pull

        return pull(settings, args.pull_model, server=args.pull_server, insecure=args.pull_insecure)
    if command == "ps":
        from .running import ps

        return ps(settings)
    if command == "unload":
        from .running import unload

        return unload(settings, args.unload_model)
    from .embed import embed

    return embed(settings, args.embed_texts, dimensions=args.embed_dimensions, as_json=args.embed_json)
