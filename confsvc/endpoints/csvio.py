"""Endpoint inventory as CSV (RFC 4180, UTF-8 with a BOM so Excel shows Vietnamese correctly).

Import is all-or-nothing: every invalid row is reported with its line number and every fault (a code
with its values, for the web's catalog, and an English reason), and nothing is written unless every
row is valid. Exported cells that a spreadsheet would read as a formula (starting with ``=``, ``+``,
``-``, ``@``, tab, CR, or the protective ``'`` itself) get a leading ``'`` (OWASP CSV injection,
:mod:`confsvc.cells`); the import removes that one quote, so ``+84…`` dial addresses and a ``-``
survive the round trip unchanged. Rows are matched by ``serial``; the room is found by
(``unit_code``, ``room_name``) and created when the unit has no room of that name.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from confsvc import cells
from confsvc.clock import utc_now
from confsvc.endpoints import schemas, service
from confsvc.endpoints.models import Endpoint, LifecycleState, Protocol, Room, Unit
from confsvc.endpoints.unit_history import UnitMerged, require_current
from confsvc.endpoints.validation import normalise_dial_address, normalise_ip
from confsvc.errors import Invalid
from confsvc.text import one_line, search_key
from confsvc.users.principal import MANAGE_INVENTORY, Principal

COLUMNS = ("serial", "unit_code", "unit_name", "room_name", "name", "vendor", "model", "protocol",
           "dial_address", "management_ip", "firmware", "lifecycle_state")
REQUIRED = ("serial", "unit_code", "room_name", "vendor", "model", "protocol", "dial_address")
#: Upper bound on rows per file: the country has ~4,000 endpoints.
MAX_ROWS = 20_000
BOM = "\ufeff"


@dataclass
class _Row:
    line: int
    serial: str
    unit_code: str
    room_name: str
    name: str | None
    vendor: str
    model: str
    protocol: Protocol
    dial_address: str
    management_ip: str | None
    firmware: str | None
    lifecycle_state: LifecycleState


def export_endpoints(session: Session, principal: Principal, *, unit_id: int | None = None) -> bytes:
    """Every endpoint the principal may see, ordered by unit code, room name, serial. Returns bytes."""
    query = (select(Endpoint, Room, Unit).join(Room, Room.id == Endpoint.room_id).join(Unit, Unit.id == Room.unit_id)
             .order_by(Unit.code, Room.name, Endpoint.serial))
    if principal.unit_ids is not None:
        query = query.where(Room.unit_id.in_(principal.unit_ids))
    if unit_id is not None:
        service.get_unit(session, principal, unit_id)
        query = query.where(Room.unit_id.in_(service.expand_units(session, {unit_id})))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for endpoint, room, unit in session.exec(query):
        writer.writerow([cells.to_csv(v) for v in (
            endpoint.serial, unit.code, unit.name, room.name, endpoint.name, endpoint.vendor, endpoint.model,
            endpoint.protocol.value, endpoint.dial_address, endpoint.management_ip or "", endpoint.firmware or "",
            endpoint.lifecycle_state.value)])
    return (BOM + out.getvalue()).encode("utf-8")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        reason = f"byte {data[exc.start]:#04x} is not valid UTF-8; save the file as CSV UTF-8"
        raise Invalid("file is not UTF-8", code="invalid_rows",
                      errors=[_error(line, [_fault("not_utf8", reason)])]) from None


def _fault(code: str, reason: str, **params: Any) -> dict[str, Any]:
    """One fault of a row: a stable ``code`` with its ``params`` (the web renders them through its
    catalog) and the English ``reason`` (the API's text)."""
    return {"code": code, "reason": reason, **params}


def _error(line: int, faults: list[dict[str, Any]]) -> dict[str, Any]:
    """A row's error: ``{"line", "reason" (every fault's reason, "; "-joined), "faults": [...]}``."""
    return {"line": line, "reason": "; ".join(f["reason"] for f in faults), "faults": faults}


def parse(data: bytes, unit_ids_by_code: dict[str, int]) -> tuple[list[_Row], list[dict]]:
    """Parse and validate every row. Returns ``(rows, errors)``; errors are ``{"line", "reason", "faults"}``
    with every fault of the row (``faults``: ``{"code", "reason", ...params}``)."""
    reader = csv.DictReader(io.StringIO(_decode(data), newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in REQUIRED if c not in header]
    unknown = [c for c in header if c not in COLUMNS]
    if missing or unknown:
        faults = ([_fault("missing_columns", f"missing column(s): {', '.join(missing)}", columns=missing)]
                  if missing else []) + (
            [_fault("unknown_columns", f"unknown column(s): {', '.join(unknown)}", columns=unknown)] if unknown else [])
        return [], [_error(1, faults)]
    rows: list[_Row] = []
    errors: list[dict] = []
    seen: dict[str, int] = {}
    next_line = 2
    records = iter(reader)
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit: unreadable from here on
            errors.append(_error(next_line, [_fault("unreadable", f"unreadable CSV: {exc}")]))
            break
        line, next_line = next_line, reader.line_num + 1
        if len(rows) + len(errors) >= MAX_ROWS:
            errors.append(_error(line, [_fault("too_many_rows", f"more than {MAX_ROWS} rows", limit=MAX_ROWS)]))
            break
        if None in record:
            errors.append(_error(line, [_fault("too_many_fields", "more fields than columns")]))
            continue
        values = {k: one_line(cells.from_csv(v or "")) for k, v in record.items()}
        if not any(values.values()):
            continue
        row, faults = _validate(line, values, unit_ids_by_code)
        if row is not None and row.serial in seen:
            faults.append(_fault("repeated_serial", f"serial {row.serial!r} repeats line {seen[row.serial]}",
                                 value=row.serial, other_line=seen[row.serial]))
        if faults:
            errors.append(_error(line, faults))
            continue
        assert row is not None
        seen[row.serial] = line
        rows.append(row)
    return rows, errors


def _validate(line: int, v: dict[str, str], unit_ids_by_code: dict[str, int]) -> tuple[_Row | None, list[dict]]:
    """The row and every fault found in it (the row is ``None`` when a fault leaves no usable value)."""
    faults: list[dict[str, Any]] = []
    empty = [c for c in REQUIRED if not v.get(c)]
    if empty:
        faults.append(_fault("empty_required", f"empty required field(s): {', '.join(empty)}", columns=empty))
    if v["unit_code"] and v["unit_code"] not in unit_ids_by_code:
        faults.append(_fault("unknown_unit_code", f"unknown unit code {v['unit_code']!r}", value=v["unit_code"]))
    protocol: Protocol | None = None
    if v["protocol"]:
        try:
            protocol = Protocol(v["protocol"].lower().replace(".", ""))
        except ValueError:
            faults.append(_fault("bad_protocol", f"protocol must be sip or h323, not {v['protocol']!r}",
                                 value=v["protocol"]))
    lifecycle: LifecycleState | None = None
    try:
        lifecycle = LifecycleState(v.get("lifecycle_state") or "active")
    except ValueError:
        faults.append(_fault("bad_lifecycle",
                             f"lifecycle_state must be active, maintenance or retired, not {v['lifecycle_state']!r}",
                             value=v["lifecycle_state"]))
    for column, limit in (("serial", 100), ("room_name", 200), ("name", 200), ("vendor", 60), ("model", 100),
                          ("dial_address", 255), ("firmware", 100)):
        if len(v.get(column) or "") > limit:
            faults.append(_fault("too_long", f"{column} is longer than {limit} characters", column=column,
                                 limit=limit))
    dial_address = None
    if protocol is not None and v["dial_address"] and len(v["dial_address"]) <= 255:
        try:
            dial_address = normalise_dial_address(protocol, v["dial_address"])
        except ValueError as exc:
            faults.append(_fault("bad_dial_address", str(exc), value=v["dial_address"], protocol=protocol.value))
    management_ip = None
    if v.get("management_ip"):
        try:
            management_ip = normalise_ip(v["management_ip"])
        except ValueError as exc:
            faults.append(_fault("bad_ip", str(exc), value=v["management_ip"]))
    if faults or protocol is None or lifecycle is None or dial_address is None:
        return None, faults
    return _Row(line=line, serial=v["serial"], unit_code=v["unit_code"], room_name=v["room_name"],
                name=v.get("name") or None, vendor=v["vendor"], model=v["model"], protocol=protocol,
                dial_address=dial_address, management_ip=management_ip, firmware=v.get("firmware") or None,
                lifecycle_state=lifecycle), []


def import_endpoints(session: Session, principal: Principal, data: bytes, *, dry_run: bool = False) -> schemas.ImportResult:
    """Validate the whole file, then create/update endpoints by serial (admin only).

    Raises:
        Forbidden: not an admin.
        Invalid: code ``invalid_rows`` with ``errors=[{"line", "reason"}, ...]``; nothing written.
    """
    principal.require(MANAGE_INVENTORY)
    unit_ids_by_code = dict(session.exec(select(Unit.code, Unit.id)).all())
    rows, errors = parse(data, unit_ids_by_code)
    errors = sorted(errors + _merged_unit_errors(session, rows, unit_ids_by_code), key=lambda e: e["line"])
    if errors:
        raise Invalid(f"{len(errors)} invalid row(s); nothing was imported", code="invalid_rows", errors=errors)
    result = schemas.ImportResult(created=0, updated=0, unchanged=0, rooms_created=0, dry_run=dry_run)
    if dry_run:
        # The same work inside a savepoint that is rolled back: the counts are exactly what a real
        # import would report, and nothing stays written.
        savepoint = session.begin_nested()
        try:
            _apply(session, rows, unit_ids_by_code, result)
        finally:
            savepoint.rollback()
        return result
    _apply(session, rows, unit_ids_by_code, result)
    return result


def _merged_unit_errors(session: Session, rows: list[_Row], unit_ids_by_code: dict[str, int]) -> list[dict[str, Any]]:
    """An error for each row placing an endpoint in a unit that has ended (merged): the reason names the
    successor (``unit_history.require_current``), nothing lands on a former unit."""
    errors = []
    for row in rows:
        unit = session.get(Unit, unit_ids_by_code[row.unit_code])
        try:
            if unit is not None:
                require_current(session, unit)
        except UnitMerged as exc:
            errors.append(_error(row.line, [_fault("unit_merged", exc.detail, value=row.unit_code,
                                                   successor=exc.extra.get("successor_name", ""))]))
    return errors


def _apply(session: Session, rows: list[_Row], unit_ids_by_code: dict[str, int], result: schemas.ImportResult) -> None:
    """Create rooms and create/update endpoints for validated ``rows``, counting into ``result``."""
    rooms = {(r.unit_id, r.name): r for r in session.exec(select(Room)).all()}
    existing = {e.serial: e for e in session.exec(select(Endpoint).where(Endpoint.serial.in_([r.serial for r in rows])))}
    units = {u.id: u for u in session.exec(select(Unit).where(Unit.id.in_(set(unit_ids_by_code[r.unit_code] for r in rows))))}
    for row in rows:
        unit = units[unit_ids_by_code[row.unit_code]]
        room = rooms.get((unit.id, row.room_name))
        if room is None:
            room = Room(unit_id=unit.id, name=row.room_name)
            room.search_text = search_key(room.name, unit.name)
            session.add(room)
            session.flush()
            rooms[(unit.id, room.name)] = room
            result.rooms_created += 1
        values = {"room_id": room.id, "name": row.name or f"{room.name} – {row.vendor} {row.model}",
                  "vendor": row.vendor, "model": row.model, "protocol": row.protocol,
                  "dial_address": row.dial_address, "management_ip": row.management_ip,
                  "firmware": row.firmware, "lifecycle_state": row.lifecycle_state}
        endpoint = existing.get(row.serial)
        if endpoint is None:
            endpoint = Endpoint(serial=row.serial, **values)
            result.created += 1
        elif any(getattr(endpoint, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(endpoint, key, value)
            endpoint.updated_at = utc_now()
            result.updated += 1
        else:
            result.unchanged += 1
            continue
        endpoint.search_text = service.endpoint_search_text(endpoint, room, unit)
        session.add(endpoint)
    session.flush()
