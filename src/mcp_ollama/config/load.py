"""Reading settings: flags over environment variables over defaults; the only reader of ``os.environ``."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SettingsError
from .database import is_postgres_url, split_password
from .hosts import parse_ollama_hosts, read_api_key
from .settings import LOG_LEVELS, Settings
from .spec import SETTINGS_SPEC


def _positive_number(name: str, raw: str, kind: type[int] | type[float]) -> int | float:
    try:
        number = kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}: {raw!r} is not a {kind.__name__}") from exc
    if number <= 0:
        raise SettingsError(f"{name}: must be greater than 0, got {raw!r}")
    return number


def _parallel(name: str, raw: str) -> tuple[int | None, tuple[tuple[str, int], ...]]:
    """``N`` (every model), ``N,model=M,...`` or ``model=M,...``: the count for every model (None if
    not given) and the models with a count of their own."""
    default: int | None = None
    per_model: dict[str, tuple[str, int]] = {}
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        model, equals, count = item.rpartition("=")
        model = model.strip()
        if equals and not model:
            raise SettingsError(f"{name}: {item!r} names no model (write model=N)")
        try:
            number = int(_positive_number(name, count.strip(), int))
        except SettingsError:
            raise SettingsError(f"{name}: {item!r} is not N or model=N (N a whole number above 0)") from None
        if not equals:
            if default is not None:
                raise SettingsError(f"{name}: {raw!r} gives the count for every model twice")
            default = number
        elif model.casefold() in per_model:
            raise SettingsError(f"{name}: {raw!r} gives {model}'s count twice")
        else:
            per_model[model.casefold()] = (model, number)
    if default is None and not per_model:
        raise SettingsError(f"{name}: {raw!r} is not N or N,model=M,...")
    return default, tuple(per_model.values())


_SWITCHES = {
    "1": True,
    "on": True,
    "true": True,
    "yes": True,
    "0": False,
    "off": False,
    "false": False,
    "no": False,
}


def _switch(name: str, raw: str) -> bool:
    try:
        return _SWITCHES[raw.strip().lower()]
    except KeyError:
        raise SettingsError(
            f"{name}: {raw!r} is not on or off (also accepted: 1/0, true/false, yes/no)"
        ) from None


def load_settings(flags: Mapping[str, str | None], environ: Mapping[str, str] | None = None) -> Settings:
    """Build ``Settings`` from flag values (by setting name; ``None`` = not given) over the environment.

    Raises ``SettingsError`` naming the flag or variable whose value is unusable.
    """
    env = os.environ if environ is None else environ
    raw: dict[str, str] = {}
    for spec in SETTINGS_SPEC:
        given = flags.get(spec.name)
        if given is None:
            given = env.get(spec.env) or None
        if given is not None:
            raw[spec.name] = given
    names = {spec.name: spec.names for spec in SETTINGS_SPEC}
    address, *others = parse_ollama_hosts(raw.get("ollama_url"))
    values: dict[str, Any] = {
        "ollama_url": address.url,
        "ollama_user": address.user,
        "ollama_password": address.password,
        "other_ollama_hosts": tuple(others),
        "ollama_api_key": read_api_key(raw.get("ollama_api_key")),
    }
    if "model" in raw:
        values["model"] = raw["model"].strip()
    if "embed_model" in raw:
        values["embed_model"] = raw["embed_model"].strip()
    if "system_prompt" in raw and "system_prompt_file" in raw:
        raise SettingsError("give the system prompt as text or as a file, not both")
    if "system_prompt_file" in raw:
        path = Path(raw["system_prompt_file"]).expanduser()
        try:
            values["system_prompt"] = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SettingsError(f"{names['system_prompt_file']}: cannot read {path}: {exc.strerror}") from exc
    elif "system_prompt" in raw:
        values["system_prompt"] = raw["system_prompt"].strip()
    if values.get("system_prompt") == "":
        raise SettingsError("the system prompt given is empty")
    for name in (
        "history_turns",
        "num_ctx",
        "max_context",
        "max_message_chars",
        "max_answer_chars",
        "max_image_bytes",
        "max_queued_per_user",
        "max_streams_per_user",
        "max_tasks_per_user",
    ):
        if name in raw:
            values[name] = _positive_number(names[name], raw[name], int)
    for name in ("connect_timeout", "generation_timeout", "heartbeat_interval", "max_generation_seconds"):
        if name in raw:
            values[name] = _positive_number(names[name], raw[name], float)
    if "max_parallel" in raw:
        default, per_model = _parallel(names["max_parallel"], raw["max_parallel"])
        if default is not None:
            values["max_parallel"] = default
        values["max_parallel_models"] = per_model
    if "first_token_timeout" in raw:
        first = raw["first_token_timeout"].strip()
        values["first_token_timeout"] = (
            0.0 if first == "0" else _positive_number(names["first_token_timeout"], first, float)
        )
    if "answer_deadline" in raw:
        deadline = raw["answer_deadline"].strip()
        values["answer_deadline"] = (
            0.0 if deadline == "0" else _positive_number(names["answer_deadline"], deadline, float)
        )
    if "preload" in raw:
        values["preload"] = _switch(names["preload"], raw["preload"])
    if "db_path" in raw:
        db = raw["db_path"]
        if is_postgres_url(db):
            values["db_path"], values["db_password"] = split_password(db)
        else:
            values["db_path"] = db if db == ":memory:" else str(Path(db).expanduser())
    if "keep_alive" in raw:
        values["keep_alive"] = raw["keep_alive"].strip()
    if "http_bind" in raw:
        values["http_bind"] = raw["http_bind"].strip().removeprefix("[").removesuffix("]")
    if "http_port" in raw:
        port = _positive_number(names["http_port"], raw["http_port"], int)
        if port > 65535:
            raise SettingsError(f"{names['http_port']}: {raw['http_port']!r} is not a port (1-65535)")
        values["http_port"] = port
    if "tokens_file" in raw:
        values["tokens_file"] = str(Path(raw["tokens_file"]).expanduser())
    if "log_level" in raw:
        level = raw["log_level"].strip().upper()
        if level not in LOG_LEVELS:
            raise SettingsError(
                f"{names['log_level']}: {raw['log_level']!r} is not one of {', '.join(LOG_LEVELS)}"
            )
        values["log_level"] = level
    if "image_dirs" in raw:
        values["image_dirs"] = tuple(
            dict.fromkeys(
                os.path.abspath(os.path.expanduser(entry.strip()))
                for entry in raw["image_dirs"].split(os.pathsep)
                if entry.strip()
            )
        )
    for name in ("max_call_image_bytes", "max_inflight_image_bytes"):
        if name in raw:
            values[name] = _positive_number(names[name], raw[name], int)
    return Settings(**values)


def database_origin(flag: str | None, environ: Mapping[str, str] | None = None) -> str:
    """What chose the session database, in words for ``doctor``: the flag, ``MCP_OLLAMA_DB``, or the
    user data directory (which ``XDG_DATA_HOME`` moves on Linux and the BSDs)."""
    env = os.environ if environ is None else environ
    if flag:
        return "chosen by --db"
    if env.get("MCP_OLLAMA_DB"):
        return "chosen by MCP_OLLAMA_DB"
    xdg = env.get("XDG_DATA_HOME") if sys.platform not in ("darwin", "win32") else None
    if xdg:
        return f"the default file under XDG_DATA_HOME={xdg}, as MCP_OLLAMA_DB is not set"
    unset = (
        "MCP_OLLAMA_DB is"
        if sys.platform in ("darwin", "win32")
        else "neither MCP_OLLAMA_DB nor XDG_DATA_HOME is"
    )
    return f"the default file, as {unset} set"
