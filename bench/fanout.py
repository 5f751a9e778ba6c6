"""Benchmark: one unit-wide event to 4,000 room displays over WebSocket, confsvc vs. a bare broadcast server (issue 4).

Both servers run as real subprocesses on loopback; the clients are ``--procs`` processes of
``--clients / --procs`` asyncio clients each (the ``websockets`` library), so the server, not one
client loop, is what is measured. On a 2-core machine clients and server share the cores; both
targets suffer that equally.

- **confsvc**: ``uvicorn --factory confsvc.main:create_app`` (one worker, uvicorn's default
  WebSocket implementation with the options of ``confsvc serve``, ``cli.WS_OPTIONS``) on a migrated SQLite file (or
  ``--db-url``) holding one commune with ``--clients`` rooms and one display token per room. Every
  client opens ``/ws/rooms/{id}?token=<display token>`` and reads its ``snapshot``. The event is a
  ``meeting.reminder`` routed to all the unit's rooms, recorded with ``events.record`` and
  committed by this process, then carried to the server through Redis pub/sub
  (``CONFSVC_REDIS_URL``, the multi-process path; the same code publishes it as the app does).
- **floor**: the same number of connections to a minimal server written with ``websockets``
  alone (``serve`` + ``broadcast``): a control connection sends the same JSON text and the server
  broadcasts it to every other connection.

Latency of a client = its receive time (``time.time()``) − the trigger time (just before the
commit, resp. before the control message is sent). Memory per connection = server RSS
(``/proc/<pid>/status`` VmRSS) with every client connected minus RSS before the first, / clients.

Reproduce: ``/work/.venv-dev/bin/python bench/fanout.py`` (``--help``: ``--clients``, ``--procs``,
``--db-url``, ``--redis-url``). Needs Redis on 127.0.0.1:6379 (as the tests do).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONNECT_CONCURRENCY = 16  # per client process: in-flight handshakes
RECEIVE_TIMEOUT_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_port(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not listen")


# ---------------------------------------------------------------- data

def seed(url: str, rooms: int) -> tuple[int, list[tuple[int, str]]]:
    """One province, one commune with ``rooms`` rooms and a display token each: (unit id, [(room id, secret)])."""
    import confsvc.all_models  # noqa: F401
    from confsvc.db import make_engine, make_session
    from confsvc.endpoints.models import Room, Unit, UnitLevel
    from confsvc.migrate import upgrade
    from confsvc.live.display import SECRET_PREFIX, hash_secret
    from confsvc.live.models import DisplayToken
    from confsvc.main import install_hooks

    install_hooks()  # the listeners create_app installs: the data is written as the app writes it
    upgrade(url)
    engine = make_engine(url)
    try:
        with make_session(engine) as session:
            province = Unit(code="25", name="Tỉnh Phú Thọ", division_type="tỉnh", level=UnitLevel.province)
            session.add(province)
            session.flush()
            unit = Unit(code="07900", name="Phường Việt Trì", division_type="phường", level=UnitLevel.commune,
                        parent_id=province.id)
            session.add(unit)
            session.flush()
            made = [Room(unit_id=unit.id, name=f"Điểm cầu số {n + 1}") for n in range(rooms)]
            session.add_all(made)
            session.flush()
            pairs = []
            for room in made:
                secret = SECRET_PREFIX + secrets.token_urlsafe(32)
                session.add(DisplayToken(room_id=room.id, name="bench", prefix=secret[:12], token_hash=hash_secret(secret)))
                pairs.append((room.id, secret))
            session.commit()
            return unit.id, pairs
    finally:
        engine.dispose()


# ---------------------------------------------------------------- clients (separate processes)

async def _clients(urls: list[str], marker: str, first_message: bool, ready: mp.Queue, go: mp.Event,
                   results: mp.Queue) -> None:
    from websockets.asyncio.client import connect

    got: dict[int, float] = {}
    errors: list[str] = []
    connections = []
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    done = asyncio.Event()

    async def one(i: int, url: str) -> None:
        async with gate:
            for attempt in range(5):
                try:
                    ws = await connect(url, open_timeout=60, ping_interval=None, max_queue=64)
                    if first_message:
                        await asyncio.wait_for(ws.recv(), 60)  # the snapshot
                    break
                except Exception as exc:  # noqa: BLE001 (retried, then reported)
                    if attempt == 4:
                        errors.append(f"{type(exc).__name__}: {exc}")
                        return
                    await asyncio.sleep(0.5 * (attempt + 1))
        connections.append(ws)
        try:
            async for message in ws:
                if marker in message:
                    got[i] = time.time()
                    if len(got) == len(urls):
                        done.set()
                    return
                if '"type":"ping"' in message:
                    await ws.send('{"type":"pong"}')
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{type(exc).__name__}: {exc}")

    tasks = [asyncio.create_task(one(i, url)) for i, url in enumerate(urls)]
    while len(connections) + len(errors) < len(urls):
        await asyncio.sleep(0.05)
    ready.put((len(connections), errors[:3]))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, go.wait)
    try:
        await asyncio.wait_for(done.wait(), RECEIVE_TIMEOUT_SECONDS)
    except TimeoutError:
        pass
    results.put([got.get(i) for i in range(len(urls))])
    for ws in connections:
        await ws.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def client_process(urls: list[str], marker: str, first_message: bool, ready: mp.Queue, go: mp.Event,
                   results: mp.Queue) -> None:
    raise_fd_limit()
    asyncio.run(_clients(urls, marker, first_message, ready, go, results))


# ---------------------------------------------------------------- the floor server

def floor_server(port: int) -> None:
    """``websockets`` alone: every connection is a subscriber; a message on ``/control`` goes to all."""
    from websockets.asyncio.server import broadcast, serve

    raise_fd_limit()
    subscribers: set = set()

    async def handler(ws) -> None:
        if ws.request.path == "/control":
            async for message in ws:
                broadcast(subscribers, message)
            return
        subscribers.add(ws)
        try:
            await ws.send('{"type":"snapshot"}')
            await ws.wait_closed()
        finally:
            subscribers.discard(ws)

    async def main() -> None:
        async with serve(handler, "127.0.0.1", port, ping_interval=None, backlog=4096):
            await asyncio.Future()

    asyncio.run(main())


# ---------------------------------------------------------------- one measurement

def measure(name: str, server: subprocess.Popen, urls: list[str], procs: int, marker: str,
            trigger) -> dict[str, float | int | str]:
    ctx = mp.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    rss_before = rss_kib(server.pid)
    chunks = [urls[i::procs] for i in range(procs)]
    workers = [ctx.Process(target=client_process, args=(chunk, marker, True, ready, go, results)) for chunk in chunks]
    started = time.monotonic()
    for w in workers:
        w.start()
    connected, errors = 0, []
    for _ in workers:
        n, errs = ready.get(timeout=600)
        connected += n
        errors += errs
    connect_seconds = time.monotonic() - started
    time.sleep(2.0)  # let the server settle (threads, buffers)
    rss_after = rss_kib(server.pid)
    go.set()
    t0 = trigger()
    received: list[float | None] = []
    for _ in workers:
        received += results.get(timeout=RECEIVE_TIMEOUT_SECONDS + 60)
    for w in workers:
        w.join(60)
    latencies = sorted((t - t0) * 1000 for t in received if t is not None)
    missing = len(urls) - len(latencies)
    if errors:
        print(f"  {name}: connection errors (first ones): {errors[:3]}", file=sys.stderr)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, max(0, round(p / 100 * len(latencies)) - 1))] if latencies else float("nan")

    return {"name": name, "connected": connected, "received": len(latencies), "missing": missing,
            "p50": statistics.median(latencies) if latencies else float("nan"), "p99": pct(99),
            "max": latencies[-1] if latencies else float("nan"),
            "kib_per_conn": (rss_after - rss_before) / max(1, connected), "rss_before": rss_before,
            "rss_after": rss_after, "connect_s": connect_seconds}


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4000)
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--db-url", help="database for confsvc (default: a fresh SQLite file)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--uvicorn-arg", action="append", default=[],
                        help="extra uvicorn option for confsvc, e.g. --uvicorn-arg=--ws=websockets-sansio")
    args = parser.parse_args()
    limit = raise_fd_limit()
    if limit < args.clients + 1000:
        sys.exit(f"RLIMIT_NOFILE {limit} is too low for {args.clients} connections")

    import redis

    from confsvc import events
    from confsvc.db import make_engine, make_session
    from confsvc.live.fanout import encode

    tmp = tempfile.TemporaryDirectory(prefix="confsvc-fanout-")
    url = args.db_url or f"sqlite:///{tmp.name}/bench.sqlite3"
    print(f"seeding {args.clients} rooms with display tokens ...", flush=True)
    unit_id, pairs = seed(url, args.clients)
    marker = f"bench-{secrets.token_hex(6)}"
    payload = {"meeting_id": 1, "occurrence_id": 1, "kind": "technical_check", "title": f"Hội nghị {marker}",
               "start": "2026-03-02T01:00:00Z", "end": "2026-03-02T03:00:00Z", "minutes_before": 60}
    rows = []

    # confsvc
    port, channel = free_port(), f"confsvc-bench-{secrets.token_hex(6)}:events"
    env = {**os.environ, "CONFSVC_DATABASE_URL": url, "CONFSVC_SECRET_KEY": secrets.token_urlsafe(32),
           "CONFSVC_REDIS_URL": args.redis_url, "CONFSVC_REDIS_CHANNEL": channel, "CONFSVC_DATA_DIR": tmp.name,
           "CONFSVC_WS_PING_SECONDS": "600"}
    from confsvc.cli import uvicorn_ws_flags

    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "confsvc.main:create_app",
                               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                               "--backlog", "4096", *uvicorn_ws_flags(), *args.uvicorn_arg], env=env)
    engine = make_engine(url)
    client = redis.Redis.from_url(args.redis_url)
    try:
        wait_port(port, server)
        time.sleep(1.0)
        urls = [f"ws://127.0.0.1:{port}/ws/rooms/{room_id}?token={secret}" for room_id, secret in pairs]
        events.subscribe(lambda batch: client.publish(channel, encode(batch)))

        def trigger_confsvc() -> float:
            with make_session(engine) as session:
                events.record(session, "meeting.reminder", payload, room_ids=[r for r, _ in pairs], unit_ids=[unit_id])
                t0 = time.time()
                session.commit()  # published to Redis by the subscriber above, in this thread
            return t0

        print(f"confsvc: {args.clients} clients in {args.procs} processes ...", flush=True)
        rows.append(measure("confsvc (uvicorn, hub)", server, urls, args.procs, marker, trigger_confsvc))
    finally:
        stop(server)
        client.close()
        engine.dispose()

    # the floor
    port = free_port()
    floor = mp.get_context("spawn").Process(target=floor_server, args=(port,))
    floor.start()
    text = json.dumps({"id": 1, "type": "meeting.reminder", "at": "2026-03-02T00:00:00Z", "data": payload},
                      ensure_ascii=False, separators=(",", ":"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        from websockets.sync.client import connect

        with connect(f"ws://127.0.0.1:{port}/control") as control:
            def trigger_floor() -> float:
                t0 = time.time()
                control.send(text)
                return t0

            print(f"floor: {args.clients} clients in {args.procs} processes ...", flush=True)
            floor_server_process = type("P", (), {"pid": floor.pid})
            rows.append(measure("floor (websockets alone)", floor_server_process, [f"ws://127.0.0.1:{port}/room/{r}" for r, _ in pairs],
                                args.procs, marker, trigger_floor))
    finally:
        floor.terminate()
        floor.join(20)
    tmp.cleanup()

    print()
    print(f"{'server':<26}{'clients':>8}{'got':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'KiB/conn':>10}"
          f"{'RSS before→after MiB':>24}{'connect s':>11}")
    for r in rows:
        print(f"{r['name']:<26}{r['connected']:>8}{r['received']:>7}{r['p50']:>9.1f}{r['p99']:>9.1f}{r['max']:>9.1f}"
              f"{r['kib_per_conn']:>10.1f}{r['rss_before'] / 1024:>13.1f} → {r['rss_after'] / 1024:<8.1f}"
              f"{r['connect_s']:>11.1f}")
    ratio = rows[0]["p99"] / rows[1]["p99"]
    print(f"\np99 confsvc / floor = {ratio:.2f} (goal ≤ 1.25, issue 14: {'met' if ratio <= 1.25 else 'MISSED'})")
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
          f"Python {sys.version.split()[0]}, RLIMIT_NOFILE {limit}")
    extra = "".join(f" --uvicorn-arg={a}" for a in args.uvicorn_arg)
    print(f"reproduce: {sys.executable} bench/fanout.py --clients {args.clients} --procs {args.procs}{extra}")


if __name__ == "__main__":
    main()
