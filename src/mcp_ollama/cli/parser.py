"""The command line's parser: ``CommandParser`` remembers every option and command it has, so that
``find_misuse`` can name a wrong one, with the closest known one."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

_NUMBER = re.compile(r"^-\d+$|^-\d*\.\d+$")


class CommandParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that remembers its options and commands, so a wrong one can be named.

    argparse alone reports ``--modle llama3`` as an invalid *command* ``'llama3'``: it sets the
    unknown option aside and trips over its value. ``find_misuse`` walks the words first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.takes_value: dict[str, bool] = {"-h": False, "--help": False} if self.add_help else {}
        """Every option string this parser knows, and whether it takes a value."""
        self.commands: dict[str, CommandParser] = {}

    def option(self, *flags: str, group: argparse._ArgumentGroup | None = None, **kwargs: Any) -> None:
        """``add_argument``, remembering the option strings."""
        action = (group or self).add_argument(*flags, **kwargs)
        for flag in action.option_strings:
            self.takes_value[flag] = action.nargs != 0

    def command(self, commands: argparse._SubParsersAction[Any], name: str, **kwargs: Any) -> CommandParser:
        """``commands.add_parser(name)``, remembered as one of this parser's commands."""
        kwargs.setdefault("prog", f"{self.prog} {name}")
        child = commands.add_parser(name, **kwargs)
        assert isinstance(child, CommandParser)
        self.commands[name] = child
        return child

    def resolve(self, flag: str) -> str | None:
        """The option ``flag`` stands for (itself, or the one long option it abbreviates), or None."""
        if flag in self.takes_value:
            return flag
        if flag.startswith("--") and self.allow_abbrev:
            matches = [known for known in self.takes_value if known.startswith(flag)]
            if matches:  # several: argparse says it is ambiguous
                return matches[0]
        return None

    def unknown_option(self, flag: str) -> str:
        """The sentence naming an option this parser does not know."""
        for name, child in self.commands.items():
            if flag in child.takes_value:
                return (
                    f"unknown option '{flag}' before the command: it is an option of '{name}', put it after"
                )
        longs = [known for known in self.takes_value if known.startswith("--")]
        close = difflib.get_close_matches(flag, longs, n=1)
        if close:
            return f"unknown option '{flag}' — did you mean '{close[0]}'?"
        return f"unknown option '{flag}' (see {self.prog} --help)"

    def unknown_command(self, word: str) -> str:
        """The sentence naming a word that is none of this parser's commands."""
        close = difflib.get_close_matches(word, list(self.commands), n=1)
        if close:
            return f"unknown command '{word}' — did you mean '{close[0]}'?"
        hint = "; to chat from a terminal: mcp-ollama ask MESSAGE" if "ask" in self.commands else ""
        return f"unknown command '{word}' (commands: {', '.join(self.commands)}{hint})"

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: {message}\n")


def _looks_like_option(word: str) -> bool:
    flag = word.split("=", 1)[0]
    return word.startswith("-") and word != "-" and " " not in flag and not _NUMBER.match(word)


def find_misuse(parser: CommandParser, argv: Sequence[str]) -> tuple[CommandParser, str] | None:
    """The first option or command in ``argv`` that ``parser`` would not know, with the sentence
    naming it, and the (sub)parser it was given to; None when every word is known."""
    current = parser
    positionals = 0
    wants_value = False
    for word in argv:
        if wants_value:
            wants_value = False
        elif word == "--":
            return None
        elif _looks_like_option(word):
            flag = word.split("=", 1)[0]
            known = current.resolve(flag)
            if known is None:
                return current, current.unknown_option(flag)
            wants_value = current.takes_value[known] and "=" not in word
        elif current.commands and positionals == 0:
            if word not in current.commands:
                return current, current.unknown_command(word)
            current = current.commands[word]
        else:
            positionals += 1
    return None
