"""``transports/exposure.py``: the loopback rule and the Host and Origin allowlists, positively too.

What must pass matters as much as what must not: a client behind a TLS proxy sends an ``https://``
Origin, and a client on the LAN names the bind address in its Host header. The server itself is
exercised in ``test_http.py``; here the lists and ``Allowlist`` are read directly (no SDK needed).
"""

from __future__ import annotations

import pytest

from mcp_ollama.transports.exposure import (
    Allowlist,
    ExposureError,
    allowed_hosts,
    allowed_origins,
    check_exposure,
    is_loopback,
)

LAN = "192.168.1.5"


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "fe80::1", "example.com"])
def test_binding_beyond_loopback_needs_a_tokens_file(bind: str) -> None:
    with pytest.raises(ExposureError) as caught:
        check_exposure(bind, None)
    assert "--tokens-file" in str(caught.value) and "tokens add" in str(caught.value)
    check_exposure(bind, "/etc/mcp-ollama/tokens")


@pytest.mark.parametrize("bind", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_needs_no_tokens_file(bind: str) -> None:
    assert is_loopback(bind)
    check_exposure(bind, None)


def test_the_bind_address_is_an_allowed_host() -> None:
    hosts = allowed_hosts(LAN)
    assert LAN in hosts and f"{LAN}:*" in hosts
    allow = Allowlist.for_bind(LAN)
    for host in (f"{LAN}:8765", LAN, "localhost:8765", "127.0.0.1:8765", "[::1]:8765"):
        assert allow.host_ok(host), host
    for host in ("192.168.1.6:8765", "evil.example", f"{LAN}.evil.example", f"{LAN}:99999", "", None):
        assert not allow.host_ok(host), host


def test_an_ipv6_bind_address_is_an_allowed_host_in_brackets() -> None:
    assert "[fe80::1]:*" in allowed_hosts("fe80::1")
    allow = Allowlist.for_bind("fe80::1")
    assert allow.host_ok("[fe80::1]:8765") and allow.host_ok("[FE80:0::1]:8765")
    assert not allow.host_ok("[fe80::2]:8765")


@pytest.mark.parametrize("bind", ["0.0.0.0", "::", "127.0.0.1"])
def test_a_wildcard_or_loopback_bind_allows_the_loopback_names_only(bind: str) -> None:
    allow = Allowlist.for_bind(bind)
    assert allow.host_ok("localhost:1") and allow.host_ok("127.0.0.1:8765")
    assert not allow.host_ok(f"{LAN}:8765") and not allow.host_ok("0.0.0.0:8765")
    assert {h.split(":")[0] for h in allowed_hosts(bind) if not h.startswith("[")} == {
        "127.0.0.1",
        "localhost",
    }


def test_extra_hosts_are_allowed_with_any_port_or_the_one_given() -> None:
    allow = Allowlist.for_bind("0.0.0.0", ["mcp.example.com", "proxy.example.com:8443"])
    assert allow.host_ok("mcp.example.com") and allow.host_ok("MCP.example.com:443")
    assert allow.host_ok("proxy.example.com:8443") and not allow.host_ok("proxy.example.com:8444")
    assert "proxy.example.com:8443" in allowed_hosts("0.0.0.0", ["proxy.example.com:8443"])


def test_origins_over_https_are_allowed_as_well_as_http() -> None:
    """A browser client behind a TLS proxy sends ``Origin: https://...``."""
    origins = allowed_origins(LAN, ["mcp.example.com"])
    for name in ("localhost", "127.0.0.1", "[::1]", LAN, "mcp.example.com"):
        for scheme in ("http", "https"):
            assert f"{scheme}://{name}" in origins and f"{scheme}://{name}:*" in origins
    allow = Allowlist.for_bind(LAN, ["mcp.example.com"])
    for origin in (
        "https://localhost",
        "https://localhost:8443",
        "HTTPS://127.0.0.1:8765",
        f"https://{LAN}:8765",
        "https://mcp.example.com",
        "http://localhost:3000",
        None,  # not a browser's cross-site request
    ):
        assert allow.origin_ok(origin), origin


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "ftp://localhost",
        "null",
        "https://localhost/page",
        "https://user@localhost",
        "https://localhost:0",
        "https://192.168.1.6",
        "localhost",
    ],
)
def test_other_origins_are_refused(origin: str) -> None:
    assert not Allowlist.for_bind(LAN).origin_ok(origin)
