"""Benchmark: a reconnect storm of room displays after a server restart, confsvc vs. a bare ``websockets``
server (issue 14, "Live channel at this scale").

- **confsvc**: ``uvicorn --factory confsvc.main:create_app`` (one worker, with the WebSocket options of
  ``confsvc serve``: ``cli.WS_OPTIONS``) on a fresh PostgreSQL database with Redis pub/sub
  (``CONFSVC_REDIS_URL``), one commune with ``--clients`` rooms and a display token each. Every display
  opens ``/ws/rooms/{id}?token=…``, reads its snapshot and keeps the id of every message as its resume
  point (as ``static/display.js`` does). Then, while up, one event to every room and one per room are
  committed; the server is stopped (SIGTERM); while it is down, three more events to every room and
  one more per room are committed; a new server is started on the same port. Each display retries
  every 0.2–0.5 s (random) and reconnects with ``since=<last id>``. **In sync** = the display has
  received every event routed to its room, those committed before the restart and while down, each
  exactly once.
- **bare**: the same number of displays against a server written with ``websockets`` alone (it sends
  one message on connect, like ``bench/fanout.py``'s floor); restarted the same way. In sync = its
  first message after the restart was received.

Reconnect time = from the moment the new server accepts TCP connections (polled every 10 ms) to the
moment the last display is in sync. Memory per connection = server RSS with every display connected
(first phase, after 2 s of settling) minus RSS before the first, / displays.

Server CPU = the server process's user + system CPU seconds over the same span (``/proc``): the work
each server does for the storm, which a busy machine stretches less than wall-clock time. ``--repeat N``
runs the two servers N times each, interleaved (confsvc, bare, confsvc, ...), and the ratios printed are
medians of the pairs.

Clients are ``--procs`` processes of asyncio clients (``websockets``) so the server, not one client
loop, is measured; on a 2-CPU machine clients and server share the cores, for both servers alike.

Reproduce: ``PYTHONPATH=. python bench/reconnect.py --clients 4000 --procs 8 --repeat 3`` (PostgreSQL on
127.0.0.1:5432, Redis on 127.0.0.1:6379, as the tests use).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import free_port, raise_fd_limit, rss_kib, seed  # noqa: E402

PG_ADMIN_URL = os.environ.get("CONFSVC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CONNECT_CONCURRENCY = 32  # per client process: handshakes in flight
SYNC_TIMEOUT_SECONDS = 300.0  # from the moment the displays learn what to expect (before the restart)


# ---------------------------------------------------------------- displays (client processes)

async def _displays(base: str, rooms: list[tuple[int, str]], bare: bool, control: mp.Queue, report: mp.Queue) -> None:
    from websockets.asyncio.client import connect

    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    last: dict[int, int | None] = {room: None for room, _ in rooms}
    got: dict[int, list[int]] = {room: [] for room, _ in rooms}
    epoch: dict[int, int] = {room: 0 for room, _ in rooms}  # connections opened
    first_after: dict[int, bool] = {room: False for room, _ in rooms}
    expected: dict[int, set[int]] = {}
    state = {"phase": 1, "synced": 0, "errors": 0}
    all_connected, all_synced = asyncio.Event(), asyncio.Event()

    def in_sync(room: int) -> bool:
        if bare:
            return first_after[room]
        return room in expected and set(got[room]) >= expected[room] and len(got[room]) == len(set(got[room]))

    def check(room: int) -> None:
        if state["phase"] == 2 and in_sync(room):
            state["synced"] += 1
            if state["synced"] == len(rooms):
                all_synced.set()

    async def display(room: int, secret: str) -> None:
        synced = False
        while True:
            if bare:
                url = f"{base}/room/{room}"
            else:
                url = f"{base}/ws/rooms/{room}?token={secret}" + (f"&since={last[room]}" if last[room] is not None else "")
            try:
                async with gate:
                    ws = await connect(url, open_timeout=60, ping_interval=None, max_queue=64, close_timeout=1)
                epoch[room] += 1
                if epoch[room] == 1 and sum(1 for e in epoch.values() if e) == len(rooms):
                    all_connected.set()
                async with ws:
                    async for raw in ws:
                        message = json.loads(raw)
                        if message.get("type") == "ping":
                            await ws.send('{"type":"pong"}')
                        if bare:
                            if state["phase"] == 2 and not first_after[room]:
                                first_after[room] = True
                        else:
                            if isinstance(message.get("id"), int):
                                last[room] = message["id"]
                            if message.get("type") not in ("snapshot", "ping", "pong"):
                                got[room].append(message["id"])
                        if not synced and in_sync(room) and state["phase"] == 2:
                            synced = True
                            check(room)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 (the server went away or refused: retry like a display)
                state["errors"] += 1
            await asyncio.sleep(0.2 + 0.3 * random.random())

    tasks = [asyncio.create_task(display(room, secret)) for room, secret in rooms]
    await all_connected.wait()
    await asyncio.sleep(0)
    report.put(("connected", len(rooms)))
    loop = asyncio.get_running_loop()
    command, payload = await loop.run_in_executor(None, control.get)
    assert command == "expect"
    if not bare:
        expected.update({int(k): set(v) for k, v in payload.items()})
    state["phase"] = 2
    synced_now = {room for room, _ in rooms if in_sync(room)}
    state["synced"] = len(synced_now)
    if state["synced"] == len(rooms):
        all_synced.set()
    try:
        await asyncio.wait_for(all_synced.wait(), SYNC_TIMEOUT_SECONDS)
        report.put(("synced", time.time(), state["errors"], 0))
    except TimeoutError:
        missing = len(rooms) - state["synced"]
        lacking = sum(1 for room, _ in rooms if not set(got[room]) >= expected.get(room, set()))
        doubled = sum(1 for room, _ in rooms if len(got[room]) != len(set(got[room])))
        print(f"  displays not in sync: {missing} ({lacking} lack an event, {doubled} got one twice)", flush=True)
        report.put(("synced", time.time(), state["errors"], missing))
    await loop.run_in_executor(None, control.get)  # "stop"
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def display_process(base: str, rooms: list[tuple[int, str]], bare: bool, control: mp.Queue, report: mp.Queue) -> None:
    raise_fd_limit()
    asyncio.run(_displays(base, rooms, bare, control, report))


# ---------------------------------------------------------------- servers

def bare_server(port: int) -> None:
    """``websockets`` alone: one message on connect, then waits for the client to go."""
    from websockets.asyncio.server import serve

    raise_fd_limit()
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    async def handler(ws) -> None:
        await ws.send('{"type":"snapshot"}')
        await ws.wait_closed()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, ping_interval=None, backlog=4096):
            await asyncio.Future()

    asyncio.run(main())


def start_confsvc(port: int, env: dict[str, str]) -> subprocess.Popen:
    from confsvc.cli import uvicorn_ws_flags

    flags = uvicorn_ws_flags()
    return subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "confsvc.main:create_app", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning", "--backlog", "4096",
                             *flags], env=env)


def start_bare(port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                             f"from bench.reconnect import bare_server; bare_server({port})"])


def wait_accepting(port: int, process: subprocess.Popen, timeout: float = 300.0) -> float:
    """Poll until ``port`` accepts; the ``time.time()`` it first did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return time.time()
        except OSError:
            time.sleep(0.01)
    raise RuntimeError("server did not listen")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---------------------------------------------------------------- events (confsvc)

def commit_events(engine, unit_id: int, room_ids: list[int], broadcasts: int, tag: str) -> dict[int, list[int]]:
    """``broadcasts`` events to every room and one ``endpoint.status`` per room, committed together;
    ``{room id: ids of its events}``."""
    from confsvc import events
    from confsvc.db import make_session

    mine: dict[int, list[int]] = {room: [] for room in room_ids}
    with make_session(engine) as session:
        wide = [events.record(session, "meeting.reminder", {"meeting_id": 1, "occurrence_id": 1, "title": f"Họp {tag} {n}",
                                                            "kind": "technical_check", "minutes_before": 60},
                              room_ids=room_ids, unit_ids=[unit_id]) for n in range(broadcasts)]
        each = events.record_each(session, "endpoint.status",
                                  [({"endpoint_id": None, "status": "online", "tag": tag}, [room]) for room in room_ids])
        session.commit()
        for event in wide:
            for room in room_ids:
                mine[room].append(event.id)
        for event in each:
            mine[event.room_ids[0]].append(event.id)
    return mine


# ---------------------------------------------------------------- one measurement

def run(name: str, *, bare: bool, port: int, start, rooms: list[tuple[int, str]], procs: int,
        between=None) -> dict[str, float | int | str]:
    ctx = mp.get_context("spawn")
    report = ctx.Queue()
    controls = [ctx.Queue() for _ in range(procs)]
    server = start()
    wait_accepting(port, server)
    time.sleep(1.0)
    rss_before = rss_kib(server.pid)
    chunks = [rooms[i::procs] for i in range(procs)]
    workers = [ctx.Process(target=display_process, args=(f"ws://127.0.0.1:{port}", chunk, bare, controls[i], report))
               for i, chunk in enumerate(chunks)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for _ in workers:
        kind, _n = report.get(timeout=600)
        assert kind == "connected"
    connect_seconds = time.monotonic() - started
    time.sleep(2.0)
    rss_after = rss_kib(server.pid)
    expected: dict[int, list[int]] = between("up") if between else {}
    time.sleep(1.0)  # delivered to the connected displays
    stopping = time.monotonic()
    stop(server)
    print(f"  {name}: stopped in {time.monotonic() - stopping:.1f} s", flush=True)
    if between:
        for room, ids in between("down").items():
            expected.setdefault(room, []).extend(ids)
    for i, chunk in enumerate(chunks):
        controls[i].put(("expect", {room: expected.get(room, []) for room, _ in chunk}))
    time.sleep(0.5)
    server = start()
    t0 = wait_accepting(port, server)
    cpu0 = cpu_seconds(server.pid)
    done, errors, missing = [], 0, 0
    for _ in workers:
        kind, at, errs, miss = report.get(timeout=SYNC_TIMEOUT_SECONDS + 60)
        done.append(at)
        errors += errs
        missing += miss
    cpu = cpu_seconds(server.pid) - cpu0
    rss_restarted = rss_kib(server.pid)
    for control in controls:
        control.put(("stop", None))
    for w in workers:
        w.join(30)
    stop(server)
    return {"name": name, "displays": len(rooms), "connect_s": connect_seconds, "reconnect_s": max(done) - t0, "cpu_s": cpu,
            "missing": missing, "errors": errors, "kib_per_conn": (rss_after - rss_before) / len(rooms),
            "rss_before": rss_before, "rss_after": rss_after, "rss_restarted": rss_restarted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4000)
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each server, interleaved (confsvc, bare, confsvc, ...); ratios are medians")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    limit = raise_fd_limit()
    if limit < args.clients + 1000:
        sys.exit(f"RLIMIT_NOFILE {limit} is too low for {args.clients} connections")

    import redis
    import sqlalchemy as sa

    from confsvc import events
    from confsvc.db import make_engine
    from confsvc.live.fanout import encode

    name = f"confsvc_reconnect_{secrets.token_hex(4)}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    rows = []
    try:
        print(f"seeding {args.clients} rooms with display tokens (PostgreSQL {name}) ...", flush=True)
        unit_id, pairs = seed(url, args.clients)
        room_ids = [room for room, _ in pairs]
        engine = make_engine(url)
        redis_client = redis.Redis.from_url(args.redis_url)
        channel = f"{name}:events"
        # The bench commits as another host would: its events reach the server through Redis.
        events.subscribe(lambda batch: redis_client.publish(channel, encode(batch)))
        port = free_port()
        data_dir = Path(f"/tmp/{name}")
        data_dir.mkdir(exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "CONFSVC_DATABASE_URL": url,
               "CONFSVC_SECRET_KEY": secrets.token_urlsafe(32), "CONFSVC_REDIS_URL": args.redis_url,
               "CONFSVC_REDIS_CHANNEL": channel, "CONFSVC_DATA_DIR": str(data_dir)}
        for n in range(args.repeat):
            port = free_port()
            print(f"[{n + 1}/{args.repeat}] confsvc: {args.clients} displays in {args.procs} processes, restart ...",
                  flush=True)
            rows.append(run("confsvc (PostgreSQL+Redis)", bare=False, port=port,
                            start=lambda port=port: start_confsvc(port, env), rooms=pairs, procs=args.procs,
                            between=lambda phase: commit_events(engine, unit_id, room_ids, 1 if phase == "up" else 3,
                                                                phase)))
            port = free_port()
            print(f"[{n + 1}/{args.repeat}] bare: {args.clients} displays in {args.procs} processes, restart ...",
                  flush=True)
            rows.append(run("bare websockets", bare=True, port=port, start=lambda port=port: start_bare(port),
                            rooms=pairs, procs=args.procs))
        engine.dispose()
        redis_client.close()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    print()
    print(f"{'server':<28}{'displays':>9}{'connect s':>11}{'reconnect+sync s':>18}{'server CPU s':>14}"
          f"{'not in sync':>13}{'KiB/conn':>10}{'RSS before→after MiB':>24}")
    for r in rows:
        print(f"{r['name']:<28}{r['displays']:>9}{r['connect_s']:>11.1f}{r['reconnect_s']:>18.1f}{r['cpu_s']:>14.1f}"
              f"{r['missing']:>13}{r['kib_per_conn']:>10.1f}{r['rss_before'] / 1024:>13.1f} → {r['rss_after'] / 1024:<8.1f}")
    pairs_ = list(zip(rows[0::2], rows[1::2], strict=True))
    time_ratio = statistics.median(c["reconnect_s"] / b["reconnect_s"] for c, b in pairs_)
    cpu_ratio = statistics.median(c["cpu_s"] / b["cpu_s"] for c, b in pairs_)
    mem_ratio = statistics.median(c["kib_per_conn"] / b["kib_per_conn"] for c, b in pairs_)
    missing = sum(r["missing"] for r in rows)
    each = ", ".join(f"{c['reconnect_s'] / b['reconnect_s']:.2f}" for c, b in pairs_)
    if missing:
        print(f"\nreconnect: {missing} displays NOT in sync within {SYNC_TIMEOUT_SECONDS:g} s of the expected events "
              "(the times above are not comparable; MISSED)")
    else:
        print(f"\nreconnect confsvc / bare = {time_ratio:.2f} (median of {len(pairs_)}: {each}; "
              f"goal ≤ 1.50: {'met' if time_ratio <= 1.5 else 'MISSED'})")
    print(f"server CPU during the reconnect confsvc / bare = {cpu_ratio:.2f} (median; the wall-clock ratio's floor "
          "when the machine is busy)")
    print(f"memory per connection confsvc / bare = {mem_ratio:.2f} (goal ≤ 1.25: {'met' if mem_ratio <= 1.25 else 'MISSED'})")
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"Python {sys.version.split()[0]}")
    print(f"reproduce: cd {ROOT} && PYTHONPATH=. {sys.executable} bench/reconnect.py --clients {args.clients} "
          f"--procs {args.procs} --repeat {args.repeat}")


if __name__ == "__main__":
    main()
