"""A webhook receiver on 127.0.0.1 that takes the request, then trickles its answer for minutes."""

from __future__ import annotations

import socket
import threading


class TrickleReceiver:
    """Accepts connections, reads each request, sends headers that promise a large body and
    then one byte every ``interval`` seconds for ``hold`` seconds (or until :meth:`close`)."""

    def __init__(self, *, hold: float = 300.0, interval: float = 0.05):
        self.hold = hold
        self.interval = interval
        self.accepted = threading.Event()
        self.connections = 0
        self.holding = 0
        self.requests: list[bytes] = []
        self._closed = threading.Event()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/hook"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = next((int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                body += chunk
            with self._lock:
                self.requests.append(body)
                self.holding += 1
            self.accepted.set()
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1000000\r\n\r\n")
                waited = 0.0
                while waited < self.hold and not self._closed.wait(self.interval):
                    waited += self.interval
                    conn.sendall(b".")
            except OSError:  # the client gave up
                pass
            finally:
                with self._lock:
                    self.holding -= 1

    def close(self) -> None:
        """Stop trickling and accepting."""
        self._closed.set()
        self._sock.close()
