"""Scheduling API under ``/api/v1``: meetings, occurrences, dry-run check, free-slot search,
maintenance windows. Routes parse, call one service function and shape the answer.

Times in answers are UTC; naive times in requests are local (SPEC rule 9). A refusal is 409
``booking_conflict`` with ``conflicts`` (SPEC rule 8).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from pydantic import BaseModel, Field, TypeAdapter

from confsvc.deps import PagingDep, SettingsDep
from confsvc.clock import as_utc, utc_now
from confsvc.db import MAX_ID, PathId, QueryId, SessionDep, read_only
from confsvc.endpoints import service as inventory
from confsvc.endpoints.schemas import BridgePublic, BridgeUpdate
from confsvc.scheduling import (availability, blocks, bridges, cancellation, creation, dial_details, editing, idempotency,
                                maintenance, planning, province_sites, reading, schemas, series, views)
from confsvc.scheduling.models import Meeting, ResourceKind
from confsvc.users.deps import CurrentPrincipal, require_capability
from confsvc.users.principal import BOOK, CHANGE_PROVINCE_SITES, MANAGE_MAINTENANCE, Principal

router = APIRouter(prefix="/api/v1")






def _meeting(meeting_id: PathId, session: SessionDep, principal: CurrentPrincipal) -> Meeting:
    return reading.get_meeting(session, principal, meeting_id)


MeetingDep = Annotated[Meeting, Depends(_meeting)]
"""For GET routes. Write routes load the meeting inside the handler (same service call), so that the
SQLite write lock is taken in the handler's thread hop (see ``users.deps.get_principal``)."""

#: The caller of a meeting write: admin or secretariat, checked before the write session is touched.
Writer = Annotated[Principal, require_capability(BOOK)]
#: The caller of a national meeting's sites change or listing (issue 14): admin or secretariat.
SitesWriter = Annotated[Principal, require_capability(CHANGE_PROVINCE_SITES)]
#: The caller of a maintenance write (operators in their units, checked by the service).
MaintenanceWriter = Annotated[Principal, require_capability(MANAGE_MAINTENANCE)]


def _answer(model: type[BaseModel], data: Any, status_code: int = 200) -> Response:
    """Serialise inside the handler's thread hop.

    Returning a Response skips FastAPI's own response validation, which would run in one more
    thread-pool hop *before* the session commits; on SQLite that hop would be taken while holding
    the write lock (see ``users.deps.get_principal``). ``response_model`` stays on the route for OpenAPI.
    """
    return Response(model.model_validate(data).model_dump_json(), status_code=status_code,
                    media_type="application/json")


def _booked(session: SessionDep, result: planning.BookResult, status_code: int = 200) -> Response:
    return _answer(schemas.MeetingBooked, {
        **views.meeting_public(session, result.meeting, endpoint_ids=result.participant_endpoint_ids),
        "occurrence_count": result.occurrence_count,
        "skipped": result.skipped, "warnings": result.warnings}, status_code)


@router.post("/meetings", response_model=schemas.MeetingBooked, status_code=status.HTTP_201_CREATED,
             tags=["meetings"])
def book_meeting(data: schemas.MeetingCreate, session: SessionDep, principal: Writer, settings: SettingsDep,
                 idempotency_key: Annotated[str | None, Header(
                     alias="Idempotency-Key", max_length=300,
                     description="Optional: a double submit or retry with the same key (same user) books once "
                                 "and gets the first answer again; another body with it is a 422 "
                                 "`idempotency_key_reused`. Kept `idempotency_ttl_hours`.")] = None):
    """Book a meeting (đặt lịch họp), single or recurring. Admin and secretariat.

    201: the meeting, ``occurrence_count``, ``skipped`` (with ``skip_conflicts``) and ``warnings``
    (public holidays). 409 ``booking_conflict`` listing every conflict; 422 for bad input.
    409 ``displacement_required`` when only lower-priority occurrences are in the way and the caller
    may displace (admin, secretariat): ``displaceable`` lists them (meeting, occurrence, start/end UTC,
    organizer, rooms/endpoints in conflict) with a ``displacement_token``; the same body with
    ``displace: true`` and the token books it and makes them tentative (SPEC rule 10); a wrong or
    stale token is 409 ``displacement_token_mismatch`` with the current list.
    """
    def run() -> idempotency.Answer:
        booked = _booked(session, creation.book_meeting(session, settings, principal, data), status.HTTP_201_CREATED)
        return idempotency.Answer(booked.status_code, "application/json", bytes(booked.body).decode("utf-8"))

    answer = idempotency.once(session, settings, principal, idempotency.parse_key(idempotency_key),
                              idempotency.fingerprint("POST /api/v1/meetings", data.model_dump(mode="json")), run)
    return Response(answer.body, status_code=answer.status_code, media_type=answer.media_type)


@router.post("/meetings/check", response_model=schemas.CheckResult, tags=["meetings"])
def check_meeting(data: schemas.MeetingCreate, session: SessionDep, principal: CurrentPrincipal,
                  settings: SettingsDep):
    """Dry run of ``POST /meetings``: ``{"ok", "conflicts", "groups", "by_province", "warnings",
    "displaceable", "displacement_token"}``; nothing is booked. ``conflicts``, ``groups`` and
    ``by_province`` are those of the 409 the booking would get; ``displaceable`` what it would displace
    (empty when it cannot)."""
    result = creation.check_meeting(session, settings, principal, data)
    return _answer(schemas.CheckResult, {
        **result, "groups": [schemas.group_public(g) for g in result["groups"]],
        "by_province": schemas.province_conflicts_public(result["conflicts"], result["provinces"])})


@router.get("/meetings", response_model=schemas.Page[schemas.MeetingPublic], tags=["meetings"])
def list_meetings(session: SessionDep, principal: CurrentPrincipal, paging: PagingDep, settings: SettingsDep,
                  from_: Annotated[datetime | None, Query(alias="from", description="occurrences ending after")] = None,
                  to: Annotated[datetime | None, Query(description="occurrences starting before")] = None,
                  unit_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="includes sub-units")] = None,
                  room_id: QueryId = None):
    """Meetings ordered by first start; operators see meetings touching their units. Confidential
    meetings outside the caller's view are "Cuộc họp" with times and rooms (``scheduling.visibility``)."""
    items, total = reading.list_meetings(
        session, principal, from_=as_utc(from_, settings.zone) if from_ else None,
        to=as_utc(to, settings.zone) if to else None, unit_id=unit_id, room_id=room_id,
        limit=paging.limit, offset=paging.offset)
    return {"items": [views.meeting_for(session, principal, m) for m in items], "total": total,
            "limit": paging.limit, "offset": paging.offset}


@router.get("/meetings/{meeting_id}", response_model=schemas.MeetingPublic, tags=["meetings"])
def get_meeting(meeting: MeetingDep, session: SessionDep, principal: CurrentPrincipal):
    """One meeting. 404 if unknown, 403 when none of an operator's units is involved. A confidential
    meeting is "Cuộc họp" with its times and rooms for anyone outside it (``scheduling.visibility``)."""
    return views.meeting_for(session, principal, meeting)


@router.patch("/meetings/{meeting_id}", response_model=schemas.MeetingBooked, tags=["meetings"])
def edit_meeting(meeting_id: PathId, data: schemas.MeetingUpdate, session: SessionDep,
                 principal: Writer, settings: SettingsDep):
    """Whole-series edit; per-occurrence exceptions and occurrence ids are kept (SPEC rule 5)."""
    meeting = reading.get_meeting(session, principal, meeting_id)
    return _booked(session, editing.edit_meeting(session, settings, principal, meeting, data))


@router.post("/meetings/{meeting_id}/cancel", response_model=schemas.MeetingPublic, tags=["meetings"])
def cancel_meeting(meeting_id: PathId, session: SessionDep, principal: Writer):
    """Cancel the meeting; its resources are free at once (SPEC rule 6)."""
    meeting = reading.get_meeting(session, principal, meeting_id)
    return _answer(schemas.MeetingPublic,
                   views.meeting_public(session, cancellation.cancel_meeting(session, principal, meeting)))


@router.post("/meetings/{meeting_id}/pin", response_model=schemas.MeetingPublic, tags=["meetings"])
def set_pin(meeting_id: PathId, session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep,
            data: schemas.PinUpdate | None = None):
    """Set the meeting's PIN (``{"pin": "123456"}``) or generate a new one (empty body). Join
    instructions, displays and invitations follow (``meeting.updated``, SEQUENCE bumps)."""
    meeting = reading.get_meeting(session, principal, meeting_id)
    return _answer(schemas.MeetingPublic, views.meeting_public(session, dial_details.set_pin(
        session, settings, principal, meeting, data.pin if data else None)))


@router.post("/meetings/{meeting_id}/conference-number", response_model=schemas.MeetingPublic, tags=["meetings"])
def set_conference_number(meeting_id: PathId, session: SessionDep, principal: CurrentPrincipal,
                          settings: SettingsDep, data: schemas.NumberUpdate | None = None):
    """Set (``{"conference_number": 1234}``) or regenerate (empty body) the meeting's conference number
    for every occurrence. 409 ``booking_conflict`` naming the occurrences of other meetings on the
    bridge holding it then; 422 ``number_out_of_range``, ``no_bridge``."""
    meeting = reading.get_meeting(session, principal, meeting_id)
    return _answer(schemas.MeetingPublic, views.meeting_public(session, dial_details.set_conference_number(
        session, settings, principal, meeting, data.conference_number if data else None)))


@router.post("/meetings/{meeting_id}/sites", response_model=schemas.MeetingBooked, tags=["meetings"])
def add_sites(meeting_id: PathId, data: schemas.SitesChange, session: SessionDep, principal: SitesWriter,
              settings: SettingsDep):
    """Add sites (rooms with their active endpoints) to a national meeting (issue 14). The national
    office: any room, any time. A province's admin or secretariat: rooms of its own province only, until
    the meeting's ``sites_deadline``. Checked as a booking, for the added rooms only: their conflicts and the
    ports they add to their province's bridge (MCU), with one cascade leg for a province that had no site
    yet. Rooms already taking part are left as they are. The meeting is not re-booked: only the added
    sites' rows are written, only their displays told (``meeting.updated`` with ``scope`` ``"sites"`` and
    their join instructions) and mailed; SEQUENCE bumps.

    200: the meeting. 403 ``sites_deadline_passed`` (the detail names the deadline, local and UTC),
    ``forbidden_province_site`` (a room of another province), ``sites_not_open`` (no deadline set);
    409 ``booking_conflict`` with ``conflicts``, ``groups`` and ``by_province``; 422 ``unknown_room``,
    ``no_active_endpoint``, ``meeting_cancelled``."""
    meeting = province_sites.find_meeting(session, principal, meeting_id)
    return _booked(session, province_sites.add_sites(session, settings, principal, meeting, data.room_ids))


@router.delete("/meetings/{meeting_id}/sites/{room_id}", response_model=schemas.MeetingBooked, tags=["meetings"])
def remove_site(meeting_id: PathId, room_id: PathId, session: SessionDep, principal: SitesWriter,
                settings: SettingsDep):
    """Remove a site (a room and its endpoints) from a national meeting (issue 14); who may, and until
    when, as ``POST /meetings/{id}/sites``. Its bookings are freed at once; a province left without sites
    leaves the cascade. Only that site's rows change; only its display is told (``meeting.updated``,
    ``scope`` ``"sites"``, without it in ``room_ids``) and its contact mailed a CANCEL. 200: the meeting;
    404 ``site_not_found``; 422 ``chair_room_site``."""
    meeting = province_sites.find_meeting(session, principal, meeting_id)
    return _booked(session, province_sites.remove_site(session, settings, principal, meeting, room_id))


@router.get("/meetings/{meeting_id}/province-sites", response_model=schemas.ProvinceSitesPublic, tags=["meetings"])
def list_province_sites(meeting_id: PathId, session: SessionDep, principal: SitesWriter, settings: SettingsDep):
    """The provinces' rooms for a meeting (issue 14). A province's admin or secretariat: its own province's
    counts and ``own`` — its sites with the bridge each joins, its busy rooms with what takes them
    (``conflicts``), its free rooms. The national office: each province's counts (``sites``, ``busy``,
    ``free``), not the provinces' busy rooms. 403 for other roles."""
    meeting = province_sites.find_meeting(session, principal, meeting_id)
    return _answer(schemas.ProvinceSitesPublic, province_sites.province_sites(session, settings, principal, meeting))


@router.get("/meetings/{meeting_id}/occurrences", response_model=list[schemas.OccurrencePublic],
            tags=["meetings"])
def list_occurrences(meeting: MeetingDep, session: SessionDep):
    """Every materialised occurrence (cancelled ones included), in start order."""
    return reading.list_occurrences(session, meeting)


@router.patch("/meetings/{meeting_id}/occurrences/{occurrence_id}", response_model=schemas.OccurrencePublic,
              tags=["meetings"])
def edit_occurrence(meeting_id: PathId, occurrence_id: PathId, data: schemas.OccurrenceUpdate,
                    session: SessionDep, principal: Writer, settings: SettingsDep):
    """Move one occurrence or change its chair room / participants (it becomes an exception)."""
    meeting = reading.get_meeting(session, principal, meeting_id)
    occurrence = reading.get_occurrence(session, meeting, occurrence_id)
    return _answer(schemas.OccurrencePublic,
                   editing.edit_occurrence(session, settings, principal, meeting, occurrence, data))


@router.post("/meetings/{meeting_id}/occurrences/{occurrence_id}/cancel", response_model=schemas.OccurrencePublic,
             tags=["meetings"])
def cancel_occurrence(meeting_id: PathId, occurrence_id: PathId, session: SessionDep, principal: Writer):
    """Cancel one occurrence; its slot is free at once."""
    meeting = reading.get_meeting(session, principal, meeting_id)
    occurrence = reading.get_occurrence(session, meeting, occurrence_id)
    occ = cancellation.cancel_occurrence(session, principal, meeting, occurrence)
    rows = [o for o in reading.list_occurrences(session, meeting) if o["id"] == occ.id]
    return _answer(schemas.OccurrencePublic, rows[0])


@router.post("/meetings/{meeting_id}/occurrences/{occurrence_id}/restore", response_model=schemas.OccurrencePublic,
             tags=["meetings"])
def restore_occurrence(meeting_id: PathId, occurrence_id: PathId, session: SessionDep, principal: CurrentPrincipal,
                       settings: SettingsDep):
    """Book a cancelled occurrence again (khôi phục buổi họp): 409 with the conflicts if its slot is taken;
    422 ``occurrence_not_cancelled``. Feeds, invites and displays follow; SEQUENCE bumps."""
    meeting = reading.get_meeting(session, principal, meeting_id)
    occurrence = reading.get_occurrence(session, meeting, occurrence_id)
    return _answer(schemas.OccurrencePublic,
                   series.restore_occurrence(session, settings, principal, meeting, occurrence))


@router.post("/meetings/{meeting_id}/occurrences", response_model=schemas.OccurrencePublic,
             status_code=status.HTTP_201_CREATED, tags=["meetings"])
def add_occurrence(meeting_id: PathId, data: schemas.OccurrenceCreate, session: SessionDep,
                   principal: CurrentPrincipal, settings: SettingsDep):
    """Add an extra occurrence to a series (thêm buổi họp, RFC 5545 RDATE) with the meeting's rooms:
    201 with its stable id; 409 with the conflicts; 422 ``not_a_series``, ``occurrence_exists``,
    ``occurrences_overlap``. Feeds, invites and displays follow; SEQUENCE bumps."""
    meeting = reading.get_meeting(session, principal, meeting_id)
    return _answer(schemas.OccurrencePublic, series.add_occurrence(session, settings, principal, meeting, data),
                   status.HTTP_201_CREATED)


@router.get("/availability", response_model=list[schemas.FreeSlot], tags=["availability"])
def availability_search(
        session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep,
        duration_minutes: Annotated[int, Query(gt=0)], from_date: date, to_date: date,
        endpoint_ids: Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]], Query()] = [],  # noqa: B006 (FastAPI query list)
        room_ids: Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]], Query(description="first = chair room; rooms bring their endpoints")] = [],  # noqa: B006
        count: Annotated[int, Query(ge=1, le=availability.MAX_COUNT)] = 5,
        check_lead_minutes: Annotated[int | None, Query(ge=0)] = None,
        teardown_minutes: Annotated[int | None, Query(ge=0)] = None, bridge_id: QueryId = None):
    """Free-slot search: earliest ``count`` windows of ``duration_minutes`` between local dates
    ``from_date``…``to_date`` (inclusive) inside working hours where all resources are free."""
    return availability.find_free_slots(
        session, settings, principal, endpoint_ids=endpoint_ids, room_ids=room_ids,
        duration_minutes=duration_minutes, from_date=from_date, to_date=to_date, count=count,
        check_lead_minutes=check_lead_minutes, teardown_minutes=teardown_minutes, bridge_id=bridge_id)


@router.patch("/bridges/{bridge_id}", response_model=BridgePublic, tags=["bridges"])
def update_bridge(bridge_id: PathId, data: BridgeUpdate, session: SessionDep, principal: CurrentPrincipal,
                  settings: SettingsDep):
    """Edit a bridge (MCU). Admin only. 409 ``booking_conflict`` when a lower ``port_capacity`` is
    below what is booked from now on: the conflicts give each interval where the peak would exceed
    it, the peak and the occurrences holding ports then (SPEC rules 2, 8)."""
    return _answer(BridgePublic, bridges.update_bridge(session, settings, principal, bridge_id, data))


@router.post("/endpoints/{endpoint_id}/maintenance", response_model=schemas.MaintenancePublic,
             status_code=status.HTTP_201_CREATED, tags=["endpoints"])
def create_maintenance(endpoint_id: PathId, request: Request, data: schemas.MaintenanceCreate, session: SessionDep,
                       principal: MaintenanceWriter, settings: SettingsDep):
    """A maintenance window (bảo trì) ``[start, end)`` on an endpoint; 409 if meetings are booked then."""
    endpoint, room = read_only(request, lambda read: inventory.get_endpoint(read, principal, endpoint_id))
    window = maintenance.create_maintenance(session, settings, principal, endpoint, room, start=data.start,
                                        end=data.end, note=data.note)
    return _answer(schemas.MaintenancePublic, window, status.HTTP_201_CREATED)


# ---------------------------------------------------------------- day blocks (issue 12)

def _room_and_room(read: Any, principal: Principal, room_id: int) -> tuple[Any, Any]:
    room = inventory.get_room(read, principal, room_id)
    return room, room


def _blocks_answer(items: list[Any]) -> Response:
    adapter = TypeAdapter(list[schemas.BlockPublic])
    return Response(adapter.dump_json(adapter.validate_python([blocks.block_public(b) for b in items])),
                    media_type="application/json")


@router.post("/rooms/{room_id}/blocks", response_model=schemas.BlockPublic, status_code=status.HTTP_201_CREATED,
             tags=["rooms"])
def create_room_block(room_id: PathId, data: schemas.BlockCreate, request: Request, session: SessionDep,
                      principal: MaintenanceWriter, settings: SettingsDep):
    """Block a room for whole local days ``first_day … last_day`` (repairs, an election, a holiday): a
    booking of the room, shown in its feed as an all-day event. Admin, secretariat; operators in their
    units. 409 ``booking_conflict`` listing what is booked then; 422 beyond the limits (``max_block_days``,
    ``maintenance_past_days``, the booking horizon)."""
    room, _ = read_only(request, lambda read: _room_and_room(read, principal, room_id))
    block = blocks.create_block(session, settings, principal, ResourceKind.room, room, room,
                                first_day=data.first_day, last_day=data.last_day, reason=data.reason)
    return _answer(schemas.BlockPublic, blocks.block_public(block), status.HTTP_201_CREATED)


@router.get("/rooms/{room_id}/blocks", response_model=list[schemas.BlockPublic], tags=["rooms"])
def list_room_blocks(room_id: PathId, session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep,
                     include_past: bool = False):
    """The room's day blocks by first day (by default those not yet over)."""
    inventory.get_room(session, principal, room_id)
    return _blocks_answer(blocks.list_blocks(session, ResourceKind.room, room_id, include_past=include_past,
                                             today=utc_now().astimezone(settings.zone).date()))


@router.delete("/rooms/{room_id}/blocks/{block_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["rooms"])
def delete_room_block(room_id: PathId, block_id: PathId, request: Request, session: SessionDep,
                      principal: MaintenanceWriter):
    """Lift a block: the days are free at once. 404 ``block_not_found``."""
    room, _ = read_only(request, lambda read: _room_and_room(read, principal, room_id))
    blocks.delete_block(session, principal, ResourceKind.room, room_id, room, block_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/endpoints/{endpoint_id}/blocks", response_model=schemas.BlockPublic,
             status_code=status.HTTP_201_CREATED, tags=["endpoints"])
def create_endpoint_block(endpoint_id: PathId, data: schemas.BlockCreate, request: Request, session: SessionDep,
                          principal: MaintenanceWriter, settings: SettingsDep):
    """Block an endpoint for whole local days (as ``POST /rooms/{id}/blocks``)."""
    endpoint, room = read_only(request, lambda read: inventory.get_endpoint(read, principal, endpoint_id))
    block = blocks.create_block(session, settings, principal, ResourceKind.endpoint, endpoint, room,
                                first_day=data.first_day, last_day=data.last_day, reason=data.reason)
    return _answer(schemas.BlockPublic, blocks.block_public(block), status.HTTP_201_CREATED)


@router.get("/endpoints/{endpoint_id}/blocks", response_model=list[schemas.BlockPublic], tags=["endpoints"])
def list_endpoint_blocks(endpoint_id: PathId, session: SessionDep, principal: CurrentPrincipal,
                         settings: SettingsDep, include_past: bool = False):
    """The endpoint's day blocks by first day (by default those not yet over)."""
    inventory.get_endpoint(session, principal, endpoint_id)
    return _blocks_answer(blocks.list_blocks(session, ResourceKind.endpoint, endpoint_id, include_past=include_past,
                                             today=utc_now().astimezone(settings.zone).date()))


@router.delete("/endpoints/{endpoint_id}/blocks/{block_id}", status_code=status.HTTP_204_NO_CONTENT,
               tags=["endpoints"])
def delete_endpoint_block(endpoint_id: PathId, block_id: PathId, request: Request, session: SessionDep,
                          principal: MaintenanceWriter):
    """Lift an endpoint's block. 404 ``block_not_found``."""
    _endpoint, room = read_only(request, lambda read: inventory.get_endpoint(read, principal, endpoint_id))
    blocks.delete_block(session, principal, ResourceKind.endpoint, endpoint_id, room, block_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
