"""Helpers of the live-channel tests: a real uvicorn server in a thread or a subprocess, and a
WebSocket client (the ``websockets`` library) that reads JSON messages."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from confsvc.cli import WS_OPTIONS


class ThreadServer:
    """``app`` served by uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on",
                                     ws_ping_interval=None, **WS_OPTIONS)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="live-test-server", daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(20)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws(self, path: str, **options: Any) -> ClientConnection:
        return connect(f"ws://127.0.0.1:{self.port}{path}", open_timeout=10, close_timeout=2, **options)


def free_port() -> int:
    return free_port_on("127.0.0.1")


class Served:
    """A confsvc server process started by :func:`served`: its base URL and the process (to kill)."""

    def __init__(self, base: str, process: subprocess.Popen) -> None:
        self.base = base
        self.process = process

    @property
    def ws_base(self) -> str:
        return self.base.replace("http://", "ws://")

    def kill(self) -> None:
        """SIGKILL (``kill -9``): no shutdown handler runs, open requests and connections die with it."""
        self.process.kill()
        self.process.wait()


@contextmanager
def served(command: list[str], port: int, *, env: dict[str, str], cwd: str | None = None, stderr: Any = None,
           start_seconds: float = 90, host: str = "127.0.0.1") -> Iterator[Served]:
    """Run ``command``, a confsvc server on ``host``:``port`` (``env`` is its whole environment), and yield
    it once ``/healthz`` answers 200; terminate it afterwards (killed after 10 s). ``stderr``: a file for
    the server's log, else a pipe, read into the error when the server exits early.

    Raises:
        RuntimeError: the server exited, or did not answer within ``start_seconds``.
    """
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE if stderr is None else stderr)
    base = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + start_seconds  # a loaded CI machine starts slowly
        while True:
            if process.poll() is not None:
                log = process.stderr.read().decode(errors="replace") if process.stderr else f"see {stderr.name}"
                raise RuntimeError(f"server exited: {log}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not answer /healthz")
            time.sleep(0.1)
        yield Served(base, process)
    finally:
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()


@contextmanager
def serving(command: list[str], port: int, *, env: dict[str, str], cwd: str | None = None, stderr: Any = None,
            start_seconds: float = 90, host: str = "127.0.0.1") -> Iterator[str]:
    """:func:`served`, yielding only the base URL."""
    with served(command, port, env=env, cwd=cwd, stderr=stderr, start_seconds=start_seconds, host=host) as server:
        yield server.base


def free_port_on(host: str) -> int:
    """A free TCP port on ``host`` (any loopback address, e.g. 127.0.0.2: Linux routes 127.0.0.0/8 to lo)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextmanager
def host_server(env: dict[str, str], host: str) -> Iterator[Served]:
    """``confsvc.main:create_app`` in a uvicorn subprocess bound to ``host`` only, configured by ``env``
    (added to this process's environment): one application host of several."""
    port = free_port_on(host)
    with served([sys.executable, "-m", "uvicorn", "--factory", "confsvc.main:create_app", "--host", host,
                 "--port", str(port), "--ws", "websockets-sansio", "--log-level", "warning"],
                port, env={**os.environ, **env}, host=host) as server:
        yield server


@contextmanager
def process_server(env: dict[str, str]) -> Iterator[str]:
    """``confsvc.main:create_app`` in a uvicorn subprocess configured by ``env``; yields its base URL."""
    with host_server(env, "127.0.0.1") as server:
        yield server.base


def booking_invariants(connection: Any) -> dict[str, int]:
    """Violations of the booking rules in the stored bookings, each count must be 0 (SQL on a SQLAlchemy
    ``connection``): two overlapping bookings of one endpoint or room (SPEC rules 1, 4), one conference
    number twice among overlapping bookings of a bridge, a bridge over its capacity at an instant (rule 7)."""
    pairs = connection.exec_driver_sql(
        "SELECT count(*) FROM bookings a JOIN bookings b ON a.resource_kind = b.resource_kind "
        "AND a.resource_id = b.resource_id AND a.id < b.id AND a.resource_kind IN ('endpoint', 'room') "
        "AND a.window_start < b.window_end AND b.window_start < a.window_end").scalar_one()
    numbers = connection.exec_driver_sql(
        "SELECT count(*) FROM bookings a JOIN bookings b ON a.resource_kind = 'bridge' "
        "AND b.resource_kind = 'bridge' AND a.resource_id = b.resource_id AND a.id < b.id "
        "AND a.conference_number = b.conference_number "
        "AND a.window_start < b.window_end AND b.window_start < a.window_end").scalar_one()
    # Peak per bridge: the ports in use at each booking's start (a peak starts at some start).
    over = connection.exec_driver_sql(
        "SELECT count(*) FROM (SELECT a.id, br.port_capacity, sum(b.ports) AS used FROM bookings a "
        "JOIN bridges br ON br.id = a.resource_id "
        "JOIN bookings b ON b.resource_kind = 'bridge' AND b.resource_id = a.resource_id "
        "AND b.window_start <= a.window_start AND a.window_start < b.window_end "
        "WHERE a.resource_kind = 'bridge' GROUP BY a.id, br.port_capacity) p "
        "WHERE p.used > p.port_capacity").scalar_one()
    return {"overlapping endpoint/room pairs": pairs, "conference numbers twice": numbers,
            "bridge instants over capacity": over}


def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next JSON message that is not a keep-alive ping."""
    while True:
        message = json.loads(ws.recv(timeout=timeout))
        if message.get("type") != "ping":
            return message


def closed_with(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server closes; the close code and reason it sent."""
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame"
        return exc.rcvd.code, exc.rcvd.reason


class RawClient:
    """A WebSocket client on a bare socket with a tiny receive buffer that reads only when told:
    a client that stops reading, as a stalled room display does (RFC 6455 framing, §5.2)."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                          .encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def frame(self) -> tuple[int, bytes]:
        first, second = self._read(2)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._read(8))[0]
        return first & 0x0F, self._read(length)

    def close_frame(self) -> tuple[int, str]:
        """Read every frame up to the server's close frame; its code and reason."""
        while True:
            opcode, payload = self.frame()
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    def close(self) -> None:
        self.sock.close()


def delivered(hub: Any, event_id: int) -> None:
    """Wait until ``hub`` (a server's ``app.state.hub``) has delivered ``event_id``: the fan-out hands
    committed events to it on the server's event loop, a moment after the commit."""
    deadline = time.monotonic() + 10
    while hub.max_id < event_id:
        assert time.monotonic() < deadline, f"event {event_id} never reached the hub"
        time.sleep(0.01)
