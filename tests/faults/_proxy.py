"""A TCP proxy on loopback whose link can be cut and restored, to cut the network between a
worker and the server without touching either.

While cut, every open connection is reset and every new one is accepted and reset at once,
which the HTTP client reports as a broken connection (the server is running but cannot be
reached). The proxy listens on 127.0.0.1 only, forwards only to 127.0.0.1, and stops by itself
after ``max_seconds`` so a failing test cannot leave it running.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from types import TracebackType


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP RST (SO_LINGER 0) instead of an orderly FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class ToggleProxy:
    """Forward ``127.0.0.1:<port>`` to ``127.0.0.1:<target_port>``; :meth:`cut` and
    :meth:`restore` the link. Use as a context manager; ``url`` is the proxy's base URL.

    Args:
        target_port: the server's port on 127.0.0.1.
        max_seconds: the proxy shuts itself down after this long.
    """

    def __init__(self, target_port: int, max_seconds: float = 120.0) -> None:
        self.target = ("127.0.0.1", target_port)
        self._deadline = time.monotonic() + max_seconds
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._cut = threading.Event()
        self._stopped = threading.Event()
        self.cuts = 0
        self.refused = 0  # connections reset while cut
        self._thread = threading.Thread(target=self._accept, name="toggle-proxy", daemon=True)

    # --- control

    def cut(self) -> None:
        """Reset every open connection and every new one until :meth:`restore`."""
        self._cut.set()
        self.cuts += 1
        with self._lock:
            doomed = list(self._open)
            self._open.clear()
        for sock in doomed:
            _reset(sock)

    def restore(self) -> None:
        """Forward connections again."""
        self._cut.clear()

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def __enter__(self) -> ToggleProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop accepting, close every connection, wait for the accept thread."""
        self._stopped.set()
        self.cut()
        self._thread.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()

    # --- forwarding

    def _accept(self) -> None:
        while not self._stopped.is_set() and time.monotonic() < self._deadline:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                break
            if self._cut.is_set():
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                _reset(client)  # the server is down: the client sees a broken connection
                continue
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(
                target=self._pump, args=(client, upstream), name="toggle-proxy-pump", daemon=True
            ).start()
        self._stopped.set()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        """Copy bytes both ways until either side closes, the link is cut or time is up."""
        peers = {a: b, b: a}
        try:
            while not self._stopped.is_set() and time.monotonic() < self._deadline:
                try:
                    ready, _, _ = select.select([a, b], [], [], 0.1)
                except (OSError, ValueError):  # closed by cut()
                    return
                for sock in ready:
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    try:
                        peers[sock].sendall(data)
                    except OSError:
                        return
        finally:
            with self._lock:
                self._open.discard(a)
                self._open.discard(b)
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()
