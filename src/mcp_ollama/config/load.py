"""Reading settings: flags over environment variables over defaults; the only reader of ``os.environ``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SettingsError
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
        "max_parallel",
    ):
        if name in raw:
            values[name] = _positive_number(names[name], raw[name], int)
    for name in ("connect_timeout", "generation_timeout", "heartbeat_interval", "max_generation_seconds"):
        if name in raw:
            values[name] = _positive_number(names[name], raw[name], float)
    if "answer_deadline" in raw:
        deadline = raw["answer_deadline"].strip()
        values["answer_deadline"] = (
            0.0 if deadline == "0" else _positive_number(names["answer_deadline"], deadline, float)
        )
    if "preload" in raw:
        values["preload"] = _switch(names["preload"], raw["preload"])
    if "db_path" in raw:
        db = raw["db_path"]
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
    return Settings(**values)
