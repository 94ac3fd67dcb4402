"""One row of ``SETTINGS_SPEC``: a setting's flag, environment variable and help (``SettingSpec``).

In a module of its own so that ``spec`` and ``http_spec`` both build rows without importing each
other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SettingSpec:
    """One configurable setting: its flag, environment variable, and help text."""

    name: str
    flag: str | None
    """``None`` for a setting read from the environment only (a secret: ``ps`` shows flags)."""
    env: str
    help: str
    metavar: str = "VALUE"

    @property
    def names(self) -> str:
        """How an error message names the setting: ``--flag / VARIABLE``, or just the variable."""
        return f"{self.flag} / {self.env}" if self.flag else self.env
