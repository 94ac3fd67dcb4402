"""Servers that are not Ollama at all, for the failures a pool must survive: one that accepts
connections and never answers (``HungServer``) and one that never accepts them (``BlackHole``)."""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class HungServer:
    """Listens on 127.0.0.1, accepts every connection, reads what comes, and never answers a byte:
    a machine whose Ollama is wedged. ``connections`` counts what it accepted."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._accepted: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="hung-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        with self._lock:
            return len(self._accepted)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.setblocking(False)  # never read: the kernel buffers the request, nobody answers
            with self._lock:
                self._accepted.append(conn)

    def start(self) -> HungServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self._listener.close()
        with self._lock:
            for conn in self._accepted:
                conn.close()

    def __enter__(self) -> HungServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class BlackHole:
    """A port on 127.0.0.1 where a connection attempt is never answered: a listener with a backlog
    of 0 that never accepts, its one queue place taken by a connection of its own. Linux drops
    the SYN of every later attempt (``tcp_abort_on_overflow`` is 0 by default), so a client's
    connect hangs until its own timeout, as for a machine that vanished from the network."""

    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port: int = self._listener.getsockname()[1]
        self._filler = socket.create_connection(("127.0.0.1", self.port), timeout=2.0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._filler.close()
        self._listener.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
