"""A TCP proxy in front of PostgreSQL that can freeze a connection at an exact point of a load.

The crash tests point the run worker's warehouse URL at it. It reads the
frontend side of PostgreSQL's wire protocol (type byte, length, body) and,
when armed, stops forwarding at the first message of the chosen point:

- ``copy``: the first CopyData of a ``COPY ... FROM STDIN`` (the server is
  in the middle of the COPY and has received none of the rows);
- ``commit``: the ``COMMIT`` that follows ``MERGE INTO campaign_daily_metrics``
  (the partition's transaction has done all its work and is about to commit).

At ``commit_reply`` (the same ``COMMIT``) it does not freeze: it forwards the
``COMMIT``, swallows the server's answer, which comes once the transaction has
committed, and hangs up both sides. The client sees its connection lost during
COMMIT of a transaction that in fact committed.

A frozen connection forwards nothing more; once the client side closes (the
worker was killed) the proxy closes the server side, as the network would,
and PostgreSQL aborts the transaction. No hook in the product is needed.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

STARTUP_CODES_WITHOUT_REPLY_STATE = {80877103, 80877104}  # SSLRequest, GSSENCRequest


@dataclass(frozen=True)
class Upstream:
    """Where the real server listens: a Unix socket path, or a TCP host and port."""

    unix_path: str | None = None
    host: str | None = None
    port: int = 5432

    @classmethod
    def of_url(cls, url: str) -> Upstream:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        port = parts.port or int(query.get("port", ["5432"])[0])
        host = query.get("host", [parts.hostname or ""])[0]
        if host.startswith("/"):
            return cls(unix_path=str(Path(host) / f".s.PGSQL.{port}"))
        return cls(host=host or "127.0.0.1", port=port)

    def connect(self) -> socket.socket:
        if self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.unix_path)
            return sock
        return socket.create_connection((self.host, self.port), timeout=10)


class PostgresProxy:
    """Listens on 127.0.0.1; forwards each connection to ``url``'s server; freezes one when armed."""

    def __init__(self, url: str) -> None:
        self._target_url = url
        self._upstream = Upstream.of_url(url)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._armed: str | None = None
        self.frozen = threading.Event()
        self._closed = False
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="pgproxy-accept", daemon=True).start()

    @property
    def url(self) -> str:
        """The target's URL, routed through the proxy (no TLS: the proxy reads the protocol)."""
        parts = urlsplit(self._target_url)
        user = parts.username or "postgres"
        query = {key: values[0] for key, values in parse_qs(parts.query).items() if key not in ("host", "port")}
        query.update(sslmode="disable", gssencmode="disable")
        return urlunsplit(("postgresql", f"{user}@127.0.0.1:{self.port}", parts.path, urlencode(query), ""))

    def arm(self, point: str) -> None:
        """Freeze the next connection that reaches ``point`` (``copy``, ``commit`` or ``commit_reply``)."""
        with self._lock:
            self._armed = point
            self.frozen.clear()

    def disarm(self) -> None:
        """Freeze nothing from now on."""
        with self._lock:
            self._armed = None

    def close(self) -> None:
        """Stop listening and drop every connection."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        _hang_up(*self._sockets)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = self._upstream.connect()
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            # Set once the connection's COMMIT went to the server at ``commit_reply``: its answer is dropped.
            drop_answer = threading.Event()
            threading.Thread(target=self._pump_frontend, args=(client, server, drop_answer), daemon=True).start()
            threading.Thread(target=self._pump_backend, args=(server, client, drop_answer), daemon=True).start()

    def _pump_backend(self, server: socket.socket, client: socket.socket, drop_answer: threading.Event) -> None:
        with contextlib.suppress(OSError):
            # The client waits for each answer before sending more, so the first bytes after
            # the COMMIT are its answer, sent once the transaction committed.
            while (data := server.recv(65536)) and not drop_answer.is_set():
                client.sendall(data)
        _hang_up(server, client)

    def _pump_frontend(self, client: socket.socket, server: socket.socket, drop_answer: threading.Event) -> None:
        reader = _MessageReader(client)
        merged = False
        in_copy = False
        try:
            while True:
                message = reader.next_startup() if reader.in_startup else reader.next_message()
                if message is None:
                    break
                kind, raw = message
                if kind in (b"Q", b"P"):
                    in_copy = b"COPY " in raw and b"FROM STDIN" in raw
                    merged = merged or b"MERGE INTO campaign_daily_metrics" in raw
                point = None
                if kind == b"d" and in_copy:
                    point = "copy"
                elif merged and _is_commit(kind, raw):
                    point = "commit"
                    merged = False
                if point == "commit" and self._freeze_here("commit_reply"):
                    drop_answer.set()
                elif point is not None and self._freeze_here(point):
                    _wait_until_closed(client)
                    break
                server.sendall(raw)
        except OSError:
            pass
        finally:
            _hang_up(server, client)

    def _freeze_here(self, point: str) -> bool:
        with self._lock:
            if self._armed != point:
                return False
            self._armed = None
        self.frozen.set()
        return True


class _MessageReader:
    """Reads whole frontend messages from a socket, keeping the bytes to forward unchanged."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""
        self.in_startup = True

    def _read(self, count: int) -> bytes | None:
        while len(self._buffer) < count:
            data = self._sock.recv(65536)
            if not data:
                return None
            self._buffer += data
        chunk, self._buffer = self._buffer[:count], self._buffer[count:]
        return chunk

    def next_startup(self) -> tuple[bytes, bytes] | None:
        header = self._read(8)
        if header is None:
            return None
        length, code = struct.unpack("!ii", header)
        body = self._read(length - 8)
        if body is None:
            return None
        self.in_startup = code in STARTUP_CODES_WITHOUT_REPLY_STATE
        return b"", header + body

    def next_message(self) -> tuple[bytes, bytes] | None:
        header = self._read(5)
        if header is None:
            return None
        (length,) = struct.unpack("!i", header[1:])
        body = self._read(length - 4)
        if body is None:
            return None
        return header[:1], header + body


def _is_commit(kind: bytes, raw: bytes) -> bool:
    """Whether the message is a ``COMMIT`` statement (not, say, ``CREATE TEMP TABLE ... ON COMMIT DROP``)."""
    if kind == b"Q":
        text = raw[5:]
    elif kind == b"P":
        text = raw[5:].split(b"\0", 1)[1]  # after the prepared statement's name
    else:
        return False
    return text.split(b"\0", 1)[0].strip().rstrip(b";").upper() == b"COMMIT"


def _hang_up(*sockets: socket.socket) -> None:
    """Close ``sockets`` for real: shutdown wakes a thread blocked reading one, where close alone would not."""
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


def _wait_until_closed(sock: socket.socket) -> None:
    """Swallow what the client still sends until it disconnects (it was killed)."""
    with contextlib.suppress(OSError):
        while True:
            readable, _, _ = select.select([sock], [], [], 1.0)
            if readable and not sock.recv(65536):
                return
