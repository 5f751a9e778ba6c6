"""Endpoint live status (SPEC "Endpoint": online, offline, in_call, fault, unknown, with last_seen).

Reports come from device agents and bridge webhooks (agent tokens), from people (admins anywhere,
operators in their units: SPEC "operator … reports endpoint faults") and from the reachability
probe (``probe.py``). Rules, in :func:`apply_status`:

- a report whose ``at`` is older than the endpoint's latest recorded change is *stale* and ignored
  (a delayed webhook must not undo a newer state);
- a report showing the device alive (online, in_call, fault) moves ``last_seen_at`` forward to ``at``;
- only a *change* (status differs from the current one) writes an ``endpoint_status_history`` row
  and records an ``endpoint.status`` event, routed to the endpoint's room; repeats write neither.

Event data: ``{"endpoint_id", "room_id", "status", "previous", "at" (ISO-8601 UTC), "source"}``,
source one of ``agent``, ``bridge``, ``user``, ``probe``. Services flush, never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, func, select

from confsvc import events
from confsvc.clock import iso_utc, utc_now
from confsvc.endpoints.models import AgentToken, Endpoint, EndpointStatus, EndpointStatusChange, Room
from confsvc.errors import Forbidden, Invalid, NotFound
from confsvc.users.principal import REPORT_ENDPOINT_STATUS, Principal

#: Statuses that prove the device answered, so they move ``last_seen_at``.
ALIVE = frozenset({EndpointStatus.online, EndpointStatus.in_call, EndpointStatus.fault})
#: How far in the future a report's ``at`` may lie (device clocks drift).
MAX_CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Reporter:
    """Who sends a status report: an agent token (``source`` agent or bridge) or a person (``user``)."""

    source: str
    agent_token_id: int | None = None
    bound_endpoint_id: int | None = None
    principal: Principal | None = None

    @classmethod
    def for_agent(cls, token: AgentToken) -> Reporter:
        return cls(source="bridge" if token.bridge_id is not None else "agent", agent_token_id=token.id,
                   bound_endpoint_id=token.endpoint_id)

    @classmethod
    def for_principal(cls, principal: Principal) -> Reporter:
        """Admins and operators may report; Forbidden for other roles."""
        principal.require(REPORT_ENDPOINT_STATUS)
        return cls(source="user", principal=principal)


@dataclass(frozen=True)
class StatusResult:
    endpoint_id: int
    room_id: int
    status: EndpointStatus
    previous: EndpointStatus
    changed: bool
    stale: bool
    at: datetime
    last_seen_at: datetime | None


def _locked_endpoint(session: Session, endpoint_id: int) -> tuple[Endpoint, Room]:
    # Row lock (PostgreSQL) so two racing reports for one endpoint apply one after the other;
    # SQLite's BEGIN IMMEDIATE already serialises writers.
    row = session.exec(select(Endpoint, Room).join(Room, Room.id == Endpoint.room_id)
                       .where(Endpoint.id == endpoint_id).with_for_update(of=Endpoint)).first()
    if row is None:
        raise NotFound(f"endpoint {endpoint_id} not found", code="endpoint_not_found")
    return row[0], row[1]


def report_status(session: Session, reporter: Reporter, endpoint_id: int, status: EndpointStatus, *,
                  at: datetime | None = None, detail: str = "", now: datetime | None = None) -> StatusResult:
    """``POST /api/v1/endpoints/{id}/status``: check who may report, then :func:`apply_status`.

    ``at`` is aware (UTC or any offset), default ``now``.

    Raises:
        NotFound: unknown endpoint.
        Forbidden: an endpoint-bound agent token for another endpoint (``forbidden_endpoint``), an
            operator outside their units (``forbidden_scope``).
        Invalid: ``at`` more than 5 minutes in the future (``at_in_future``).
    """
    now = now or utc_now()
    endpoint, room = _locked_endpoint(session, endpoint_id)
    if reporter.bound_endpoint_id is not None and reporter.bound_endpoint_id != endpoint.id:
        raise Forbidden("this agent token reports another endpoint", code="forbidden_endpoint")
    if reporter.principal is not None:
        reporter.principal.require_unit(room.unit_id)
    at = (at or now).astimezone(UTC)
    if at > now + MAX_CLOCK_SKEW:
        raise Invalid("`at` lies in the future", code="at_in_future")
    if reporter.agent_token_id is not None:
        token = session.get(AgentToken, reporter.agent_token_id)
        token.last_used_at = now
        session.add(token)
    return apply_status(session, endpoint, room, status, at=at, source=reporter.source, detail=detail,
                        agent_token_id=reporter.agent_token_id,
                        user_id=reporter.principal.user_id if reporter.principal else None, now=now)


def apply_status(session: Session, endpoint: Endpoint, room: Room, status: EndpointStatus, *, at: datetime,
                 source: str, detail: str = "", agent_token_id: int | None = None, user_id: int | None = None,
                 now: datetime | None = None) -> StatusResult:
    """Apply one observation of ``endpoint`` (see the module docstring for the rules).

    The caller holds the endpoint's row (see ``_locked_endpoint``). Records ``endpoint.status``
    on a change; the event's ``at`` is ``now``, its ``data.at`` the observation time.
    """
    now = now or utc_now()
    previous = endpoint.status
    latest = session.exec(select(func.max(EndpointStatusChange.at))
                          .where(EndpointStatusChange.endpoint_id == endpoint.id)).one()
    if latest is not None and latest.replace(tzinfo=latest.tzinfo or UTC) > at:
        return StatusResult(endpoint.id, room.id, previous, previous, False, True, at, endpoint.last_seen_at)
    if status in ALIVE and (endpoint.last_seen_at is None or endpoint.last_seen_at < at):
        endpoint.last_seen_at = at
    changed = status is not previous
    if changed:
        endpoint.status = status
        session.add(EndpointStatusChange(endpoint_id=endpoint.id, status=status, previous=previous, at=at,
                                         source=source, detail=detail, agent_token_id=agent_token_id,
                                         user_id=user_id))
        events.record(session, "endpoint.status",
                      {"endpoint_id": endpoint.id, "room_id": room.id, "status": status.value,
                       "previous": previous.value, "at": iso_utc(at), "source": source},
                      room_ids=[room.id], at=now)
    session.add(endpoint)
    session.flush()
    return StatusResult(endpoint.id, room.id, status, previous, changed, False, at, endpoint.last_seen_at)


def status_history(session: Session, endpoint: Endpoint, *, limit: int = 50,
                   offset: int = 0) -> tuple[list[EndpointStatusChange], int]:
    """Changes of ``endpoint``, newest first (by ``at``, then id). The caller checked the scope."""
    query = select(EndpointStatusChange).where(EndpointStatusChange.endpoint_id == endpoint.id)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(EndpointStatusChange.at.desc(), EndpointStatusChange.id.desc())
                        .limit(limit).offset(offset)).all()
    return list(rows), total
