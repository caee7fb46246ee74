"""A TCP relay between an agent and its broker that a test can cut and restore: an uplink
outage (rain fade, a cut fiber) without stopping the broker or the observers connected to it."""

from __future__ import annotations

import contextlib
import socket
import threading

from devstack.servers import free_port


class NetCut:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.host = host
        self.upstream = upstream_port
        self.port = free_port()
        self._up = threading.Event()
        self._up.set()
        self._down_dropped = threading.Event()  # one_way(): broker → agent bytes are discarded
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server((host, self.port))
        self._listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> NetCut:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.cut()
        self._thread.join(2)
        self._listener.close()

    def cut(self) -> None:
        """Drop every relayed connection and refuse new ones until restore()."""
        self._up.clear()
        with self._lock:
            for s in list(self._socks):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._socks.clear()

    def restore(self) -> None:
        self._up.set()
        self._down_dropped.clear()

    def one_way(self) -> None:
        """Agent → broker passes; whatever the broker sends back (CONNACK, PUBACK, messages)
        is read and thrown away, on the relayed connections and on new ones, until restore()."""
        self._down_dropped.set()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if not self._up.is_set():
                client.close()
                continue
            try:
                server = socket.create_connection((self.host, self.upstream), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks.update((client, server))
            for a, b, down in ((client, server, False), (server, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, down), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, down: bool = False) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if down and self._down_dropped.is_set():
                    continue
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()
