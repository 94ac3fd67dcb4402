"""Connection-level defences for uvicorn's h11 server: read deadlines and connection caps.

uvicorn (0.55, h11 and httptools alike) arms a timer only after a response, for keep-alive: a
connection that sends part of its headers, or nothing, or a body that never ends, is kept open
for ever, and a few hundred of them exhaust the open-file limit (then asyncio logs a traceback for
every failed ``accept()``). ``httptools`` would not help: its protocol arms the same single timer.
So ``guarded_h11_protocol`` subclasses uvicorn's ``H11Protocol`` (passed as ``Config(http=...)``)
and adds, per connection:

- a header deadline: from the connection's start, or from the first byte of a later request,
  until the request's headers are complete; a client that trickles them is cut off all the same
  (a deadline, not an idle timer, so one byte a second does not keep it alive);
- a body deadline: from the headers until the end of the body, whether or not the app reads it
  (a 401 is answered without reading, and the rest of the body still has to arrive);
- caps on open connections, overall and per client address: past either, the connection gets a
  503 with a one-sentence body at once and is closed; nothing queues.

Between requests uvicorn's own keep-alive timer runs; it hands over to the header deadline when a
byte arrives. Timers are the event loop's ``call_later``: no task per connection.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = ["ConnectionLedger", "ConnectionLimits", "guarded_h11_protocol", "plain_response"]

logger = logging.getLogger(__name__)

LINGER_SECONDS = 2.0
"""How long a refused connection stays half-open after its 503, reading and dropping what the
client still sends: closing a socket with unread input resets it, and a reset can destroy the
503 before the client reads it."""
MAX_LINGERING = 16
"""Refused connections lingering at most at once; past it they are closed straight away."""

Phase = Literal["head", "body"]


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float
    body_timeout: float
    max_connections: int
    max_per_address: int


@dataclass
class ConnectionLedger:
    """Open connections, overall and per client address, shared by every connection of one server."""

    limits: ConnectionLimits
    total: int = 0
    by_address: dict[str, int] = field(default_factory=dict)
    lingering: int = 0

    def admit(self, address: str) -> str | None:
        """Count a new connection in, or say (in one sentence, for the client) why it is refused."""
        if self.total >= self.limits.max_connections:
            return "The server has too many open connections; try again in a moment."
        if self.by_address.get(address, 0) >= self.limits.max_per_address:
            return "Too many connections from your address are open; close some and try again."
        self.total += 1
        self.by_address[address] = self.by_address.get(address, 0) + 1
        return None

    def release(self, address: str) -> None:
        self.total -= 1
        left = self.by_address.get(address, 1) - 1
        if left > 0:
            self.by_address[address] = left
        else:
            self.by_address.pop(address, None)


def plain_response(status: int, reason: str, sentence: str, *extra: tuple[str, str]) -> bytes:
    """A complete HTTP/1.1 response that closes the connection, with ``sentence`` as its body."""
    body = sentence.encode("utf-8")
    lines = [
        f"HTTP/1.1 {status} {reason}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in extra),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def _peer_address(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple | list) and peer else ""


def guarded_h11_protocol(limits: ConnectionLimits) -> type[asyncio.Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with ``limits``; one ledger per call."""
    ledger = ConnectionLedger(limits)

    class GuardedH11Protocol(H11Protocol):
        def __init__(
            self,
            config: Config,
            server_state: ServerState,
            app_state: dict[str, Any],
            _loop: asyncio.AbstractEventLoop | None = None,
        ) -> None:
            super().__init__(config, server_state, app_state, _loop)
            self._address: str | None = None
            """The client's address while the connection counts in the ledger."""
            self._refused = False
            self._lingers = False
            self._phase: Phase | None = None
            self._deadline: asyncio.TimerHandle | None = None

        def connection_made(  # type: ignore[override]
            self, transport: asyncio.Transport
        ) -> None:
            address = _peer_address(transport)
            refusal = ledger.admit(address)
            if refusal is not None:
                self._refuse(transport, address, refusal)
                return
            self._address = address
            super().connection_made(transport)
            self._watch()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # what a refused client still sends is read only to be dropped
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_deadline()
            if self._refused:
                if self._lingers:
                    ledger.lingering -= 1
                    self._lingers = False
                return
            if self._address is not None:
                ledger.release(self._address)
                self._address = None
            super().connection_lost(exc)

        def _refuse(self, transport: asyncio.Transport, address: str, sentence: str) -> None:
            self.transport = transport
            self._refused = True
            logger.warning("refused a connection from %s: %s", address or "an unknown address", sentence)
            transport.write(plain_response(503, "Service Unavailable", sentence, ("Retry-After", "5")))
            if ledger.lingering < MAX_LINGERING and transport.can_write_eof():
                ledger.lingering += 1
                self._lingers = True
                transport.write_eof()  # the 503, then end of stream: the client reads both
                self._deadline = self.loop.call_later(LINGER_SECONDS, transport.close)
            else:
                transport.close()

        def _watch(self) -> None:
            """Arm the deadline the connection's state calls for (h11 knows where the request is)."""
            if self.transport is None or self.transport.is_closing():
                self._set_deadline(None)
                return
            state = self.conn.their_state
            if state is h11.IDLE:
                # uvicorn's keep-alive timer runs between requests and is cancelled by the first
                # byte of the next one: from then on the headers must arrive in time.
                self._set_deadline(None if self.timeout_keep_alive_task is not None else "head")
            elif state is h11.SEND_BODY:
                self._set_deadline("body")
            else:  # the request is in (the app is answering), or the connection is closing
                self._set_deadline(None)

        def _set_deadline(self, phase: Phase | None) -> None:
            """Start ``phase``'s deadline, unless it runs already: a phase's clock starts once."""
            if phase == self._phase and (phase is None or self._deadline is not None):
                return
            self._cancel_deadline()
            self._phase = phase
            if phase is not None:
                seconds = limits.header_timeout if phase == "head" else limits.body_timeout
                self._deadline = self.loop.call_later(seconds, self._expire, phase)

        def _cancel_deadline(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self, phase: Phase) -> None:
            self._deadline = None
            if self.transport.is_closing():
                return
            client = self._address or "an unknown address"
            if phase == "head":
                started = bool(self.conn.trailing_data[0])
                if started:  # a client that is merely slow learns why; one that sent nothing does not
                    self.transport.write(
                        plain_response(
                            408,
                            "Request Timeout",
                            f"The request headers did not arrive within {limits.header_timeout:g} s.",
                        )
                    )
                    logger.warning(
                        "closed a connection from %s: its request headers did not arrive within %g s",
                        client,
                        limits.header_timeout,
                    )
                else:
                    logger.info("closed an idle connection from %s", client)
            else:
                # The app may be reading the body, or may have answered already: closing tells it
                # (receive() gives http.disconnect) and stops the drip.
                logger.warning(
                    "closed a connection from %s: its request body did not arrive within %g s",
                    client,
                    limits.body_timeout,
                )
            self.transport.close()

    return GuardedH11Protocol
