"""Change notifications: one principal's, and coalesced under a burst."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from mcp_ollama.server.bus import PrincipalBus
from mcp_ollama.server.peers import Peers, _Peer

pytestmark = pytest.mark.anyio


class Connection:
    """Stands in for the SDK's connection: counts list_changed, and can hold the first one."""

    def __init__(self) -> None:
        self.initialized = anyio.Event()
        self.initialized.set()
        self.sent = 0
        self.release = anyio.Event()

    async def send_resource_list_changed(self) -> None:
        self.sent += 1
        await self.release.wait()


def peers_with(*connections: tuple[Connection, str]) -> Peers:
    peers = Peers(PrincipalBus(), lambda ctx: "local")
    for connection, principal in connections:
        peer = peers._peers[connection] = _Peer(connection, principal)  # type: ignore[index,arg-type]
        peer.listed = True  # as after resources/list
    return peers


async def test_a_burst_of_list_changes_is_coalesced_and_nobody_waits_for_anothers_fan_out() -> None:
    alice, bob = Connection(), Connection()
    peers = peers_with((alice, "alice"), (bob, "bob"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(peers.resources_changed, "alice")
        with anyio.fail_after(5):
            while alice.sent < 1:
                await anyio.sleep(0.01)
        with anyio.fail_after(5):  # these return at once: the running fan-out will go round again
            for _ in range(20):
                await peers.resources_changed("alice")
        alice.release.set()
    assert alice.sent == 2  # the first round, and one more for the twenty that came meanwhile
    assert bob.sent == 0  # another principal hears nothing of alice's sessions


async def test_events_on_the_bus_reach_only_their_principals_streams() -> None:
    bus = PrincipalBus()
    heard: list[Any] = []
    unsubscribe = bus.subscribe(heard.append)  # subscribed outside any request: 'local'
    await bus.publish("for alice", "alice")  # type: ignore[arg-type]
    await bus.publish("for local", "local")  # type: ignore[arg-type]
    unsubscribe()
    await bus.publish("after", "local")  # type: ignore[arg-type]
    assert heard == ["for local"]


async def test_list_changed_goes_only_to_connections_that_have_listed() -> None:
    """A connection that never sent ``resources/list`` has no list to refresh: a client that only
    calls ``chat`` is not woken by every session its user's other connections start."""
    lister, caller = Connection(), Connection()
    lister.release.set()
    caller.release.set()
    peers = peers_with((lister, "alice"), (caller, "alice"))
    peers._peers[caller].listed = False  # type: ignore[index]
    await peers.resources_changed("alice")
    assert (lister.sent, caller.sent) == (1, 0)
    peers._peers[caller].listed = True  # type: ignore[index]
    await peers.resources_changed("alice")
    assert (lister.sent, caller.sent) == (2, 1)
