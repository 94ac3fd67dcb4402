"""Configuration at the edge: what can be set (``spec``), the frozen values (``settings``), how they
are read from flags and the environment (``load``), and Ollama's addresses (``hosts``).
"""

from ..errors import SettingsError
from .hosts import Secret, parse_ollama_host
from .load import database_origin, load_settings
from .settings import DEFAULT_MODEL, Settings, default_db_path
from .spec import SETTINGS_SPEC
from .spec_row import SettingSpec

__all__ = [
    "DEFAULT_MODEL",
    "SETTINGS_SPEC",
    "Secret",
    "SettingSpec",
    "Settings",
    "SettingsError",
    "database_origin",
    "default_db_path",
    "load_settings",
    "parse_ollama_host",
]
