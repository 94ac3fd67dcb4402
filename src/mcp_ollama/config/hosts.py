"""``OLLAMA_HOST`` read the way Ollama's CLI reads it, credentials kept as ``Secret`` values."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ..errors import SettingsError

DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"


class Secret:
    """A password or key: shown as ``'********'`` by ``str``, ``repr`` and f-strings, so that an
    error text, a log line or a repr cannot leak it. ``reveal()`` is for the one place that sends it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class OllamaHost:
    """``OLLAMA_HOST`` read: the URL to show and connect to, and the credentials it carried."""

    url: str
    """Base URL without credentials."""
    user: str | None = None
    password: Secret | None = field(default=None, repr=False)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


def parse_ollama_host(value: str | None) -> OllamaHost:
    """Normalise an ``OLLAMA_HOST`` value to a base URL, the way Ollama's own CLI reads it.

    Unset means ``http://127.0.0.1:11434``. Accepted: ``host``, ``host:port``, ``:port``,
    ``[::1]:port`` and full URLs; a URL without a port gets its scheme's port (80 or 443),
    a bare host gets 11434. Bind-all addresses (``0.0.0.0``, ``::``) become loopback,
    since they name no host to connect to.

    ``user:password@`` before the host is taken off the URL and kept for HTTP Basic auth. The
    host starts after the *last* ``@``, and the user ends at the first ``:``, so a password may
    hold ``:``, ``/`` and ``@`` raw or percent-encoded (``%3A``, ``%2F``, ``%40``); an ``@`` in
    the path must be written ``%40``. Error messages show the value with its credentials masked.
    """
    text = (value or "").strip()
    if not text:
        return OllamaHost(DEFAULT_OLLAMA_URL)
    scheme, sep, rest = text.partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):  # no scheme (a "://" may be inside a password)
        scheme, sep, rest = "", "", text
    user: str | None = None
    password: Secret | None = None
    if "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        user, password = _credentials(userinfo)
    shown = repr(f"{scheme}{sep}{'***@' if user is not None else ''}{rest}")
    default_port = 11434
    if not sep:
        scheme = "http"
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    else:
        raise SettingsError(f"OLLAMA_HOST {shown}: only http:// and https:// are supported")
    hostport, _, path = rest.partition("/")
    if _is_ip(hostport.strip("[]")):
        host, port = hostport.strip("[]"), default_port
    else:
        try:
            parts = urlsplit(f"//{hostport}")
            host = parts.hostname or "127.0.0.1"
            port = parts.port if parts.port is not None else default_port
        except ValueError as exc:
            raise SettingsError(f"OLLAMA_HOST {shown} is not a host, host:port or URL") from exc
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if _is_ip(host) and ipaddress.ip_address(host).version == 6:
        host = f"[{host}]"
    path = f"/{path}".rstrip("/") if path else ""
    return OllamaHost(f"{scheme}://{host}:{port}{path}", user, password)


def _credentials(userinfo: str) -> tuple[str | None, Secret | None]:
    """``user[:password]`` from a URL, percent-decoded; (None, None) when empty."""
    if not userinfo:
        return None, None
    raw_user, colon, raw_password = userinfo.partition(":")
    try:
        user = unquote(raw_user, errors="strict")
        password = unquote(raw_password, errors="strict")
    except UnicodeDecodeError:
        raise SettingsError(
            "OLLAMA_HOST: the user or password holds a percent-escape that is not UTF-8 (not shown); "
            "write the character itself, or its UTF-8 bytes, each as %XX"
        ) from None
    if ":" in user:
        raise SettingsError("OLLAMA_HOST: the user name holds a ':', which HTTP Basic auth cannot carry")
    if not user and not colon:
        return None, None
    return user, Secret(password)


def read_api_key(value: str | None) -> Secret | None:
    """``OLLAMA_API_KEY``, checked to fit an HTTP header; the error never shows the key."""
    key = (value or "").strip()
    if not key:
        return None
    if not all(33 <= ord(char) <= 126 for char in key):
        raise SettingsError(
            "OLLAMA_API_KEY holds a space, a control character or a non-ASCII character (the key is "
            "not shown); copy it again"
        )
    return Secret(key)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_ollama_hosts(value: str | Sequence[str] | None) -> list[OllamaHost]:
    """Several Ollama servers: a comma-separated ``OLLAMA_HOST`` list, or the values of a flag
    given several times (each of which may itself hold a list).

    Each item is read like a single ``OLLAMA_HOST`` (``parse_ollama_host``), credentials kept off
    its URL. Empty items are skipped; nothing at all means the one default server. A comma inside
    a password must be written ``%2C``. The same server named twice is an error, since it would
    count its chats in two places.
    """
    items = [value] if isinstance(value, str) or value is None else list(value)
    parts = [part for item in items for part in (item or "").split(",") if part.strip()]
    if not parts:
        return [parse_ollama_host(None)]
    hosts: list[OllamaHost] = []
    seen: set[str] = set()
    for part in parts:
        host = parse_ollama_host(part)
        if host.url in seen:
            raise SettingsError(f"OLLAMA_HOST names {host.url} twice; list each Ollama server once")
        seen.add(host.url)
        hosts.append(host)
    return hosts
