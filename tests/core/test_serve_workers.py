"""``confsvc serve --workers N``: each worker accepts on its own SO_REUSEPORT socket (issue 16,
"Throughput under contention": with one shared socket the first worker to wake accepted every
keep-alive connection of a burst, and one worker served almost every request)."""

from __future__ import annotations

import pickle
import select
import socket

import pytest

from confsvc import cli


def _accepted(listener: socket.socket) -> int:
    listener.setblocking(False)
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def test_each_worker_unpickles_a_listener_of_its_own_and_the_kernel_spreads_connections() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # What uvicorn's supervisor pickles to each spawned worker.
    handed = pickle.dumps([cli._OwnListener("127.0.0.1", port, 64)])
    first, second = pickle.loads(handed)[0], pickle.loads(handed)[0]
    clients = []
    try:
        assert isinstance(first, socket.socket) and first.fileno() != second.fileno()
        for listener in (first, second):
            assert listener.getsockname() == ("127.0.0.1", port)
            assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            assert listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        for _ in range(40):  # a burst of keep-alive clients, like the bench's 50 threads
            clients.append(socket.create_connection(("127.0.0.1", port)))
        select.select([first, second], [], [], 5)
        counts = [_accepted(first), _accepted(second)]
        assert sum(counts) == 40
        assert min(counts) > 0, counts  # both workers got connections (all 40 on one: p ≈ 2⁻³⁹)
    finally:
        for sock in (*clients, first, second):
            sock.close()


def test_the_supervisors_claim_on_a_port_taken_by_another_program_fails() -> None:
    with socket.socket() as other:  # a program listening without SO_REUSEPORT
        other.bind(("127.0.0.1", 0))
        other.listen()
        with pytest.raises(OSError):
            cli._listen_reuse_port("127.0.0.1", other.getsockname()[1], 64, listen=False)
