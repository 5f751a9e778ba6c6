"""The ``confsvc`` command: serve, db upgrade, units import/merge/rename, endpoints import/export, users create, meetings
extend, stats refresh, backup/restore, demo."""

from __future__ import annotations

import getpass
import socket
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated, cast

import typer

import confsvc.all_models  # noqa: F401  (every table known to the ORM)
from confsvc.config import Settings, get_settings
from confsvc.db import make_engine, make_session
from confsvc.errors import ConfsvcError
from confsvc.users.models import Role
from confsvc.users.principal import Principal

app = typer.Typer(help="confsvc: videoconference scheduling for a province's online meeting network.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
units_app = typer.Typer(help="Administrative units.", no_args_is_help=True)
endpoints_app = typer.Typer(help="Endpoint inventory CSV.", no_args_is_help=True)
users_app = typer.Typer(help="Users.", no_args_is_help=True)
meetings_app = typer.Typer(help="Meetings.", no_args_is_help=True)
stats_app = typer.Typer(help="Usage statistics.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(units_app, name="units")
app.add_typer(endpoints_app, name="endpoints")
app.add_typer(users_app, name="users")
app.add_typer(meetings_app, name="meetings")
app.add_typer(stats_app, name="stats")

#: The CLI acts as the machine's administrator.
CLI_PRINCIPAL = Principal(user_id=0, username="cli", role=Role.admin, unit_ids=None)


def _fail(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _install_hooks() -> None:
    """The listeners and recorders ``create_app`` installs (``main.install_hooks``): commands that write
    without an app need them too (events published, join instructions recorded, usage days marked)."""
    from confsvc.main import install_hooks

    install_hooks()


class _UnitOfWork:
    """``with _UnitOfWork(settings) as session``: commit on success, print domain errors and exit 1."""

    def __init__(self, settings: Settings) -> None:
        _install_hooks()
        self.engine = make_engine(settings.effective_database_url)

    def __enter__(self):
        from confsvc.migrate import NotMigrated, assert_migrated

        try:
            assert_migrated(self.engine)
        except NotMigrated as exc:
            _fail(str(exc))
        self.session = make_session(self.engine)
        return self.session

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self.session.commit()
            else:
                self.session.rollback()
        finally:
            self.session.close()
            self.engine.dispose()
        if isinstance(exc, ConfsvcError):
            typer.secho(f"error ({exc.code}): {exc.detail}", fg=typer.colors.RED, err=True)
            for row in exc.extra.get("errors", []):
                typer.secho(f"  line {row['line']}: {row['reason']}", err=True)
            raise typer.Exit(1)
        return False


@db_app.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Create or upgrade the schema to REVISION (default: every head)."""
    from confsvc.migrate import upgrade

    settings = get_settings()
    upgrade(settings.effective_database_url, revision)
    typer.echo(f"database at {revision}: {settings.effective_database_url}")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Downgrade the schema to REVISION (``base`` removes every table)."""
    from confsvc.migrate import downgrade

    downgrade(get_settings().effective_database_url, revision)
    typer.echo(f"database at {revision}")


def _date_option(value: str | None, settings: Settings) -> date:
    """``--effective`` (YYYY-MM-DD), default today in the configured zone."""
    from confsvc.clock import utc_now

    if value is None:
        return utc_now().astimezone(settings.zone).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        _fail(f"--effective is YYYY-MM-DD, not {value!r}")
    raise AssertionError  # unreachable: _fail exits


@units_app.command("import")
def units_import(
    province: Annotated[list[str], typer.Argument(help="name or official code, e.g. 25 or 'Phú Thọ'")],
    file: Annotated[Path | None, typer.Option(help="a newer official list as CSV (code,name,division_type) "
                                                   "instead of the package's; one province only")] = None,
    yes: Annotated[bool, typer.Option("--yes", "--confirm", help="write the difference shown")] = False,
    effective: Annotated[str | None, typer.Option(help="renames and removals take effect on this local date "
                                                        "(YYYY-MM-DD; default today)")] = None,
) -> None:
    """Load provinces and their communes/wards from the vietnam-provinces package (idempotent). A province
    already loaded is compared with the list first (added, renamed, merged/removed) and nothing is written
    without --yes; renames keep the old names for past meetings."""
    from sqlmodel import select

    from confsvc.endpoints.models import Unit
    from confsvc.endpoints.units_import import diff_list, entries_from_file, find_province, import_province
    from confsvc.scheduling import unit_changes

    settings = get_settings()
    if file is not None and len(province) != 1:
        _fail("--file takes one province")
    with _UnitOfWork(settings) as session:
        for name in province:
            code = f"{find_province(name).code.value:02d}"
            if session.exec(select(Unit.id).where(Unit.code == code)).first() is None and file is None:
                s = import_province(session, name)
                typer.echo(f"{s.province_name}: {s.created} created, {s.updated} updated, {s.unchanged} unchanged")
                continue
            diff = diff_list(session, name, entries_from_file(file.read_bytes()) if file else None)
            for line in diff.lines():
                typer.echo(line)
            if not diff:
                continue
            if not yes:
                typer.echo("nothing written (run again with --yes to write this difference)")
                continue
            unit_changes.apply_list(session, settings, CLI_PRINCIPAL, diff, effective=_date_option(effective, settings))
            typer.echo("written")


@units_app.command("merge")
def units_merge(
    units: Annotated[list[str], typer.Argument(help="official codes of the units to merge")],
    into: Annotated[str, typer.Option("--into", help="the successor's code (existing, or new with --name)")],
    name: Annotated[str | None, typer.Option(help="a new successor's name, e.g. 'Xã Hy Cương'")] = None,
    division_type: Annotated[str | None, typer.Option(help="a new successor's type (default: the first unit's)")] = None,
    effective: Annotated[str | None, typer.Option(help="first local day of the successor (YYYY-MM-DD; default "
                                                        "today)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list what would change, write nothing")] = False,
) -> None:
    """Merge UNITS into a successor from a local date: their rooms (with their endpoints) move to it, users
    scoped to them are scoped to it too; past meetings, feeds and reports keep the former names."""
    from confsvc.scheduling import unit_changes

    settings = get_settings()
    with _UnitOfWork(settings) as session:
        plan = unit_changes.merge(session, settings, CLI_PRINCIPAL, units, into, effective=_date_option(effective, settings),
                                  successor_name=name, division_type=division_type, dry_run=dry_run)
        for line in plan.lines():
            typer.echo(line)
        typer.echo(f"{len(plan.rooms)} rooms, {len(plan.endpoints)} endpoints, {len(plan.users)} users"
                   + (" (dry run: nothing written)" if dry_run else " moved"))
        if dry_run:
            session.rollback()


@units_app.command("rename")
def units_rename(
    code: Annotated[str, typer.Argument(help="the unit's official code")],
    name: Annotated[str, typer.Argument(help="the new name")],
    new_code: Annotated[str | None, typer.Option(help="a new official code")] = None,
    effective: Annotated[str | None, typer.Option(help="first local day of the new name (YYYY-MM-DD; default "
                                                        "today)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show the change, write nothing")] = False,
) -> None:
    """Rename a unit from a local date; meetings before it keep the old name."""
    from confsvc.scheduling import unit_changes

    settings = get_settings()
    with _UnitOfWork(settings) as session:
        out = unit_changes.rename(session, settings, CLI_PRINCIPAL, code, name=name, new_code=new_code,
                                  effective=_date_option(effective, settings), dry_run=dry_run)
        typer.echo(f"{out['code']} {out['name']} → {out['new_code']} {out['new_name']} từ ngày {out['effective']}"
                   + (" (dry run: nothing written)" if dry_run else ""))


@endpoints_app.command("import")
def endpoints_import(path: Path, dry_run: bool = typer.Option(False, help="validate only")) -> None:
    """Import endpoints from a UTF-8 CSV file; nothing is written if any row is invalid."""
    from confsvc.endpoints.csvio import import_endpoints

    with _UnitOfWork(get_settings()) as session:
        result = import_endpoints(session, CLI_PRINCIPAL, path.read_bytes(), dry_run=dry_run)
    typer.echo(f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged, "
               f"{result.rooms_created} rooms created{' (dry run)' if dry_run else ''}")


@endpoints_app.command("export")
def endpoints_export(output: Annotated[Path | None, typer.Option("--output", "-o")] = None) -> None:
    """Write every endpoint as CSV to OUTPUT (default: standard output)."""
    from confsvc.endpoints.csvio import export_endpoints

    with _UnitOfWork(get_settings()) as session:
        data = export_endpoints(session, CLI_PRINCIPAL)
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        output.write_bytes(data)


@users_app.command("create")
def users_create(
    username: str,
    role: Annotated[Role, typer.Option(help="admin, secretariat, operator, viewer or requester")],
    unit: Annotated[list[str] | None, typer.Option(help="operator's unit code (repeatable)")] = None,
    full_name: str = "",
    email: str | None = None,
    password: Annotated[str | None, typer.Option(help="prompted for when omitted")] = None,
    province: Annotated[str | None, typer.Option(help="code of the province the user acts in (default: that "
                                                      "of their units, or the only one; none: national)")] = None,
) -> None:
    """Create a user; operators need at least one --unit."""
    from confsvc.users import service

    if password is None:
        password = getpass.getpass("Password: ")
    with _UnitOfWork(get_settings()) as session:
        unit_ids = service.unit_ids_for_codes(session, unit) if unit else []
        province_id = service.unit_ids_for_codes(session, [province])[0] if province else None
        user = service.create_user(session, username=username, password=password, role=role,
                                   full_name=full_name, email=email, unit_ids=unit_ids, province_id=province_id)
    typer.echo(f"user {user.username} ({user.role.value}) created")


@meetings_app.command("extend")
def meetings_extend() -> None:
    """Materialise open-ended series up to the horizon (the scheduler does this by itself when running)."""
    from confsvc.migrate import NotMigrated, assert_migrated
    from confsvc.scheduling.scheduler import extend_series_due

    settings = get_settings()
    _install_hooks()
    engine = make_engine(settings.effective_database_url)
    try:
        try:
            assert_migrated(engine)
        except NotMigrated as exc:
            _fail(str(exc))
        report = extend_series_due(engine, settings)
    finally:
        engine.dispose()
    typer.echo(f"{len(report)} series extended")
    for meeting_id, counts in report.items():
        typer.echo(f"  meeting {meeting_id}: {counts['booked']} booked, {counts['skipped']} skipped (conflicts)")


@stats_app.command("refresh")
def stats_refresh(
    from_date: Annotated[str, typer.Option("--from", help="first local date, YYYY-MM-DD")],
    to_date: Annotated[str, typer.Option("--to", help="local date after the last, YYYY-MM-DD (exclusive)")],
) -> None:
    """Fill the usage summary for [--from, --to): every settled day not stored (or stale) is computed now, so
    the reports over it read stored days (after a settings change or a move of rooms between units)."""
    import time
    from datetime import date

    from confsvc.stats import summary_job

    try:
        first, after = date.fromisoformat(from_date), date.fromisoformat(to_date)
    except ValueError as exc:
        _fail(f"dates are YYYY-MM-DD: {exc}")
    from confsvc.migrate import NotMigrated, assert_migrated

    settings = get_settings()
    _install_hooks()
    engine = make_engine(settings.effective_database_url)
    started = time.perf_counter()
    try:
        try:
            assert_migrated(engine)
        except NotMigrated as exc:
            _fail(str(exc))
        days = summary_job.refresh_summary(engine, settings, first, after)
    except ConfsvcError as exc:
        _fail(f"error ({exc.code}): {exc.detail}")
    finally:
        engine.dispose()
    typer.echo(f"{len(days)} days computed and stored in {time.perf_counter() - started:.1f} s")


@app.command("backup")
def backup_command(path: Annotated[Path, typer.Argument(help="file to write (replaced when complete)")]) -> None:
    """Back up the database to FILE while the service runs: SQLite through its online backup API,
    PostgreSQL with pg_dump --format=custom (client tools of the server's major version or newer)."""
    from confsvc.backup import BackupError, backup

    try:
        result = backup(get_settings().effective_database_url, path)
    except BackupError as exc:
        _fail(f"backup failed: {exc}")
    typer.echo(f"{result.backend} backup written to {result.path} ({result.bytes} bytes)")


@app.command("restore")
def restore_command(path: Annotated[Path, typer.Argument(help="a file written by `confsvc backup`")]) -> None:
    """Restore FILE into the configured database, which must be empty (a new SQLite file, or a new
    PostgreSQL database); then run `confsvc db upgrade` if the backup is from an older release."""
    from confsvc.backup import BackupError, restore

    try:
        result = restore(get_settings().effective_database_url, path)
    except BackupError as exc:
        _fail(f"restore failed: {exc}")
    typer.echo(f"{result.backend} backup {result.path} restored")


#: uvicorn's WebSocket options for ``confsvc serve`` (the benchmarks run uvicorn with the same): no
#: permessage-deflate. The live channel's messages are small JSON; a compressor and decompressor per
#: connection cost about 45 KiB of memory each (180 MiB for 4,000 room displays) and a compression per
#: connection per broadcast message (issue 14: connection memory and fan-out). Clients that offer the
#: extension are simply answered without it (RFC 7692 §5). The ``websockets`` library's Sans-I/O protocol
#: (the one the tests' servers run) rather than its legacy one: 38 KiB per display connection against 49
#: (``bench/reconnect.py``).
WS_OPTIONS: dict[str, object] = {"ws_per_message_deflate": False, "ws": "websockets-sansio"}


def uvicorn_ws_flags() -> list[str]:
    """:data:`WS_OPTIONS` as ``uvicorn`` command-line flags (for the benchmarks' server processes)."""
    return [flag for key, value in WS_OPTIONS.items()
            for flag in (f"--{key.replace('_', '-')}", str(value).lower() if isinstance(value, bool) else str(value))]


def _uvicorn_options(settings: Settings) -> dict:
    """Proxy headers from ``forwarded_allow_ips`` only; logging with secrets redacted, the request id,
    and ``log_format`` (``confsvc.logs``); :data:`WS_OPTIONS`."""
    from confsvc import logs

    return {"proxy_headers": True, "forwarded_allow_ips": settings.forwarded_allow_ips,
            "log_config": logs.uvicorn_log_config(settings.log_format), **WS_OPTIONS}


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from confsvc.main import create_app

    uvicorn.run(create_app(settings), host=host, port=port, **_uvicorn_options(settings))


def _listen_reuse_port(host: str, port: int, backlog: int, *, listen: bool = True) -> socket.socket:
    """A TCP socket on ``(host, port)`` with SO_REUSEPORT (and SO_REUSEADDR), listening unless told not to."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    if listen:
        sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class _OwnListener:
    """What uvicorn's worker supervisor hands each worker in place of one shared listening socket:
    unpickled in the worker (multiprocessing *spawn*), it becomes that worker's own socket on
    ``(host, port)`` with SO_REUSEPORT, so the kernel spreads new connections over the workers'
    accept queues.

    With the single socket uvicorn shares, whichever worker's event loop wakes first accepts every
    pending connection (asyncio and uvloop accept until the queue is empty), and keep-alive clients
    that connect together stay on that worker: in the contention bench (issue 16, 50 clients, 2
    workers) one worker spent 32 CPU-seconds while the other spent 1.6, so bookings were served by
    one process at one core."""

    def __init__(self, host: str, port: int, backlog: int) -> None:
        self.host, self.port, self.backlog = host, port, backlog

    def __reduce__(self) -> tuple[Callable[..., socket.socket], tuple[str, int, int]]:
        return _listen_reuse_port, (self.host, self.port, self.backlog)


def _serve_workers(settings: Settings, host: str, port: int, workers: int) -> None:
    """``workers`` uvicorn processes under uvicorn's supervisor (restart of a dead worker, SIGHUP,
    SIGTTIN/SIGTTOU), each accepting on its own SO_REUSEPORT socket (:class:`_OwnListener`). The
    supervisor holds a bound, non-listening socket on the port, so a port taken by another program
    fails here, before any worker starts; where SO_REUSEPORT does not exist, one shared socket."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    options = {"factory": True, "host": host, "port": port, "workers": workers, **_uvicorn_options(settings)}
    if not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run("confsvc.main:create_app", **options)
        return
    config = uvicorn.Config("confsvc.main:create_app", **options)
    try:
        claim = _listen_reuse_port(host, port, config.backlog, listen=False)
    except OSError as exc:
        _fail(f"cannot bind {host}:{port}: {exc}")
    with claim:
        typer.echo(f"confsvc serving on http://{host}:{port} with {workers} workers (one SO_REUSEPORT socket each)",
                   err=True)
        listener = cast(socket.socket, _OwnListener(host, port, config.backlog))
        Multiprocess(config, sockets=[listener]).run()


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000,
          workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1) -> None:
    """Serve the web UI and API (settings from CONFSVC_* variables or .env).

    Several workers share the live channel through Redis (``CONFSVC_REDIS_URL``) or, on PostgreSQL,
    through LISTEN/NOTIFY; on SQLite without Redis they could not, so ``--workers`` above 1 is refused.
    """
    settings = get_settings()
    try:
        settings.resolved_secret_key()
    except RuntimeError as exc:
        _fail(str(exc))
    if workers > 1 and not settings.redis_url and not settings.effective_database_url.startswith("postgresql"):
        _fail(f"--workers {workers} needs a shared event stream for the live channel: set CONFSVC_REDIS_URL, "
              "or use PostgreSQL (CONFSVC_DATABASE_URL=postgresql+psycopg://…, LISTEN/NOTIFY); "
              "with SQLite and no Redis run one worker (each worker would see only its own bookings, "
              "and room displays would miss updates).")
    if workers > 1:
        _serve_workers(settings, host, port, workers)
    else:
        _serve(settings, host, port)


@app.command()
def demo(host: str = "127.0.0.1", port: int = 8000,
         serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
         national: Annotated[bool, typer.Option(help="also load all 34 provinces and their communes: a room, "
                                                     "endpoint per commune, a bridge and a user per role per "
                                                     "province, the national user, and book one national "
                                                     "meeting cascaded over every province's bridge")]
         = False) -> None:
    """Create the database, load Phú Thọ (inventory, users, a month of meetings), print passwords, serve."""
    from confsvc import demo as demo_data
    from confsvc.migrate import upgrade

    settings = get_settings()
    # A laptop demo runs the scheduler (reminders, started/ended) unless told otherwise; the probe
    # stays off: the demo's management addresses are invented.
    settings = settings.model_copy(update={"demo": True,
                                           "scheduler_interval_seconds": settings.scheduler_interval_seconds or 15})
    upgrade(settings.effective_database_url)
    with _UnitOfWork(settings) as session:
        summary = demo_data.seed(session, settings)
    typer.echo(f"Phú Thọ: {summary.communes} communes/wards, {summary.rooms} rooms, "
               f"{summary.endpoints} endpoints, {summary.bridges} bridges")
    typer.echo(f"Calendar: {summary.meetings} meetings, {summary.occurrences} occurrences")
    passwords = summary.passwords
    if national:
        with _UnitOfWork(settings) as session:
            country = demo_data.seed_national(session)
        typer.echo(f"Việt Nam: {country.provinces} provinces, {country.communes} communes/wards, {country.rooms} rooms, "
                   f"{country.endpoints} endpoints, {country.bridges} bridges, {country.users} users")
        with _UnitOfWork(settings) as session:
            meeting = demo_data.book_national(session, settings)
        if meeting is not None:
            typer.echo(f"National meeting {meeting.meeting_id} «{demo_data.NATIONAL_TITLE}»: {meeting.sites} sites on "
                       f"{meeting.bridges} bridges ({'booked now' if meeting.booked else 'booked already'})")
        passwords = {**passwords, **country.passwords}
    typer.echo("Users (passwords are new on every `confsvc demo`):")
    for username, (role, password) in passwords.items():
        typer.echo(f"  {username:<16} {role:<12} {password}")
    if serve_after:
        typer.echo(f"Serving on http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
        _serve(settings, host, port)


if __name__ == "__main__":  # pragma: no cover
    app()
