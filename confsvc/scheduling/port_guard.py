"""The bridge's ports counted at COMMIT on PostgreSQL (SPEC rules 2 and 7; issue 16 "Throughput
under contention").

Bookings count a bridge's ports without a lock (the friendly check that lists who holds them, SPEC
rule 8); the guarantee is the constraint trigger ``bookings_bridge_ports`` (migration
``20261209_bridge_port_guard``), which runs at COMMIT under the bridge's advisory lock. Two things
here:

- :func:`install`: just before a commit that wrote bookings, ``SET CONSTRAINTS bookings_bridge_ports
  IMMEDIATE`` runs the pending checks, so the bridges' locks are taken before the events' final
  step (``events._order_at_commit``) takes the events' lock: lock order bridges → events, and a
  booking waiting for its bridge does not hold up every other writer's events.
- :func:`conflict_of`: the ``IntegrityError`` the trigger raises (a concurrent booking took the
  ports after the friendly check) as the 409 a booking's port conflict is, naming the bridge, the
  interval, its capacity and the ports that would be in use.

SQLite needs neither: its writers are serialised (``BEGIN IMMEDIATE``) and the friendly check is
the guarantee.
"""

from __future__ import annotations

import json
from datetime import datetime, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from confsvc.endpoints.models import Bridge, Unit
from confsvc.scheduling.conflicts import Window, make_conflict
from confsvc.scheduling.errors import BookingConflict

#: The constraint trigger's name (and the ``CONSTRAINT`` its error carries).
CONSTRAINT = "bookings_bridge_ports"
#: Connection flag: this transaction wrote to ``bookings``.
_WROTE = "confsvc_wrote_bookings"


def install() -> None:
    """Run the bridges' port checks first at every PostgreSQL commit that wrote bookings (module
    docstring). Listeners on every ``Engine`` (its connections note writes to ``bookings``) and on
    every ``Session`` (the check, before the events' final step); idempotent; ``main.install_hooks``
    calls it."""
    if not sa_event.contains(sa.Engine, "before_cursor_execute", _note_write):
        sa_event.listen(sa.Engine, "before_cursor_execute", _note_write)
    if not sa_event.contains(Session, "before_commit", _check_ports):
        sa_event.listen(Session, "before_commit", _check_ports, insert=True)  # before events' listener


def _note_write(conn: sa.Connection, _cursor: Any, statement: str, *_args: Any) -> None:
    if statement.startswith(("INSERT INTO bookings", "UPDATE bookings")):
        conn.info[_WROTE] = True


def _check_ports(session: Session) -> None:
    """``SET CONSTRAINTS bookings_bridge_ports IMMEDIATE`` when the transaction wrote bookings; an
    over-capacity bridge raises here (``IntegrityError``, see :func:`conflict_of`)."""
    if session.in_nested_transaction():  # a savepoint's release (SQLAlchemy fires before_commit for it too)
        return
    if session.get_bind().dialect.name != "postgresql" or not session.in_transaction():
        return
    if session.new or session.dirty or session.deleted:
        session.flush()
    connection = session.connection()  # the transaction's own (it wrote, so it has one)
    if connection.info.pop(_WROTE, False):
        connection.exec_driver_sql(f"SET CONSTRAINTS {CONSTRAINT} IMMEDIATE")


def refused(exc: IntegrityError) -> bool:
    """Whether ``exc`` is ``bookings_bridge_ports``'s refusal (a bridge over its capacity)."""
    diag = getattr(exc.orig, "diag", None)
    return diag is not None and getattr(diag, "constraint_name", None) == CONSTRAINT


def conflict_of(exc: IntegrityError, session: Session, zone: tzinfo) -> BookingConflict:
    """The 409 for ``bookings_bridge_ports``'s refusal (:func:`refused`).

    ``session``: a fresh one (the failed transaction is gone), to name the bridge. The conflict is a
    bridge's port conflict as the friendly check words it (``resource_kind`` "bridge", the bridge's
    province, ``port_capacity``, ``ports_in_use`` by the others at the overloaded instant,
    ``ports_requested`` by this booking's row there, the interval) with ``reason`` saying a concurrent
    booking took the ports: the client checks again and sees who holds them.
    """
    diag: Any = getattr(exc.orig, "diag", None)
    detail = json.loads(diag.message_detail or "{}")
    bridge = session.get(Bridge, int(detail["bridge_id"]))
    name = bridge.name if bridge is not None else f"bridge {detail['bridge_id']}"
    province = session.get(Unit, bridge.unit_id) if bridge is not None and bridge.unit_id is not None else None
    start, end = datetime.fromisoformat(detail["start"]), datetime.fromisoformat(detail["end"])
    requested = int(detail.get("requested", 0))
    conflict = make_conflict(zone=zone, resource_kind="bridge", resource_id=int(detail["bridge_id"]),
                             resource_name=name, overlap=Window(start, end), requested_start=start,
                             requested_occurrence_id=None, port_capacity=int(detail["capacity"]),
                             ports_in_use=int(detail["in_use"]) - requested, ports_requested=requested,
                             province_name=province.name if province is not None else None,
                             reason="the MCU's ports were taken by a booking committed at the same time")
    return BookingConflict(f"{name}: hết cổng MCU (a concurrent booking took the ports first)", [conflict])
