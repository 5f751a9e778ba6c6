"""Inventory API under ``/api/v1``: units, rooms, endpoints (with CSV import/export), bridges.

Routes parse, call one service function and shape the answer; rules live in ``service.py``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, UploadFile, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from confsvc.deps import Paging, PagingDep
from confsvc.db import MAX_ID, PathId, QueryId, SessionDep, read_only
from confsvc.endpoints import csvio, schemas, service
from confsvc.endpoints.models import Bridge, Endpoint, EndpointStatus, LifecycleState, Protocol, Room, Unit, UnitLevel
from confsvc.users.deps import CurrentPrincipal

router = APIRouter(prefix="/api/v1")


def _unit(unit_id: PathId, request: Request, principal: CurrentPrincipal) -> Unit:
    return read_only(request, lambda session: service.get_unit(session, principal, unit_id))


def _room(room_id: PathId, request: Request, principal: CurrentPrincipal) -> Room:
    return read_only(request, lambda session: service.get_room(session, principal, room_id))


def _endpoint(endpoint_id: PathId, request: Request, principal: CurrentPrincipal) -> tuple[Endpoint, Room]:
    return read_only(request, lambda session: service.get_endpoint(session, principal, endpoint_id))


def _bridge(bridge_id: PathId, request: Request, principal: CurrentPrincipal) -> Bridge:
    return read_only(request, lambda session: service.get_bridge(session, principal, bridge_id))


# Path objects load on a read session of their own (``db.read_only``), never on the request's write
# session: a write service re-reads them after its role check (issue 16 defect 2).
UnitDep = Annotated[Unit, Depends(_unit)]
RoomDep = Annotated[Room, Depends(_room)]
EndpointDep = Annotated[tuple[Endpoint, Room], Depends(_endpoint)]
BridgeDep = Annotated[Bridge, Depends(_bridge)]


def _answer(model: type[BaseModel], data: Any, status_code: int = 200) -> Response:
    """Serialise a write's answer inside the handler's thread hop, while the write lock is held, rather
    than in one more hop before the commit (see ``scheduling.routes._answer``)."""
    return Response(model.model_validate(data).model_dump_json(), status_code=status_code,
                    media_type="application/json")


def _paged(items: list, total: int, paging: Paging) -> dict:
    return {"items": items, "total": total, "limit": paging.limit, "offset": paging.offset}


# ---------------------------------------------------------------- units

@router.get("/units", response_model=schemas.Page[schemas.UnitPublic], tags=["units"])
def list_units(session: SessionDep, principal: CurrentPrincipal, paging: PagingDep,
               level: UnitLevel | None = None, parent_id: QueryId = None,
               q: Annotated[str | None, Query(max_length=100, description="name, with or without diacritics")] = None):
    """Administrative units ordered by official code; operators see only their units and sub-units."""
    items, total = service.list_units(session, principal, level=level, parent_id=parent_id, q=q,
                                      limit=paging.limit, offset=paging.offset)
    return _paged(items, total, paging)


@router.get("/units/{unit_id}", response_model=schemas.UnitPublic, tags=["units"])
def get_unit(unit: UnitDep):
    """One unit. 404 if unknown, 403 outside an operator's scope."""
    return unit


@router.post("/units", response_model=schemas.UnitPublic, status_code=status.HTTP_201_CREATED, tags=["units"])
def create_unit(data: schemas.UnitCreate, session: SessionDep, principal: CurrentPrincipal):
    """Admin only. 409 ``duplicate_unit_code``; 422 ``unknown_unit`` for a missing parent."""
    return _answer(schemas.UnitPublic, service.create_unit(session, principal, data), status.HTTP_201_CREATED)


@router.patch("/units/{unit_id}", response_model=schemas.UnitPublic, tags=["units"])
def update_unit(unit: UnitDep, data: schemas.UnitUpdate, session: SessionDep, principal: CurrentPrincipal):
    return _answer(schemas.UnitPublic, service.update_unit(session, principal, unit, data))


# ---------------------------------------------------------------- rooms

@router.get("/rooms", response_model=schemas.Page[schemas.RoomPublic], tags=["rooms"])
def list_rooms(session: SessionDep, principal: CurrentPrincipal, paging: PagingDep,
               unit_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="includes the unit's sub-units")] = None,
               q: Annotated[str | None, Query(max_length=100)] = None):
    """Rooms (điểm cầu) ordered by unit code and name."""
    items, total = service.list_rooms(session, principal, unit_id=unit_id, q=q,
                                      limit=paging.limit, offset=paging.offset)
    return _paged(items, total, paging)


@router.get("/rooms/{room_id}", response_model=schemas.RoomPublic, tags=["rooms"])
def get_room(room: RoomDep):
    return room


@router.post("/rooms", response_model=schemas.RoomPublic, status_code=status.HTTP_201_CREATED, tags=["rooms"])
def create_room(data: schemas.RoomCreate, session: SessionDep, principal: CurrentPrincipal):
    """Admin only. 422 ``unknown_unit``; 409 ``duplicate_room_name``."""
    return _answer(schemas.RoomPublic, service.create_room(session, principal, data), status.HTTP_201_CREATED)


@router.patch("/rooms/{room_id}", response_model=schemas.RoomPublic, tags=["rooms"])
def update_room(room: RoomDep, data: schemas.RoomUpdate, session: SessionDep, principal: CurrentPrincipal):
    return _answer(schemas.RoomPublic, service.update_room(session, principal, room, data))


@router.delete("/rooms/{room_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["rooms"])
def delete_room(room: RoomDep, session: SessionDep, principal: CurrentPrincipal):
    """Admin only. 409 ``room_has_endpoints`` while endpoints are installed."""
    service.delete_room(session, principal, room)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- endpoints

@router.get("/endpoints", response_model=schemas.Page[schemas.EndpointPublic], tags=["endpoints"])
def list_endpoints(session: SessionDep, principal: CurrentPrincipal, paging: PagingDep,
                   unit_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="includes the unit's sub-units")] = None,
                   room_id: QueryId = None, status: EndpointStatus | None = None,
                   lifecycle_state: LifecycleState | None = None, protocol: Protocol | None = None,
                   vendor: Annotated[str | None, Query(max_length=60)] = None,
                   q: Annotated[str | None, Query(max_length=100)] = None):
    """Endpoints (thiết bị đầu cuối) with their room's unit; filters combine with AND."""
    rows, total = service.list_endpoints(
        session, principal, unit_id=unit_id, room_id=room_id, status=status, lifecycle_state=lifecycle_state,
        protocol=protocol, vendor=vendor, q=q, limit=paging.limit, offset=paging.offset)
    return _paged([service.endpoint_public(e, r) for e, r in rows], total, paging)


@router.get("/endpoints/export.csv", response_class=PlainTextResponse, tags=["endpoints"])
def export_endpoints(session: SessionDep, principal: CurrentPrincipal, unit_id: QueryId = None):
    """All endpoints the caller may see as UTF-8 CSV (with BOM, for Excel); columns in ``csvio.COLUMNS``."""
    body = csvio.export_endpoints(session, principal, unit_id=unit_id)
    return Response(content=body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="endpoints.csv"'})


@router.post("/endpoints/import", response_model=schemas.ImportResult, tags=["endpoints"])
def import_endpoints(file: UploadFile, session: SessionDep, principal: CurrentPrincipal, dry_run: bool = False):
    """Admin only. Multipart form with a ``file`` field holding UTF-8 CSV (BOM optional).

    Rows are matched by serial: a known serial updates, a new one creates. When any row is
    invalid nothing is written and the answer is 422 ``invalid_rows`` with ``errors``:
    ``[{"line": <1-based line, header = 1>, "reason": ...}]``. ``dry_run`` validates only.
    """
    return csvio.import_endpoints(session, principal, file.file.read(), dry_run=dry_run)


@router.get("/endpoints/{endpoint_id}", response_model=schemas.EndpointPublic, tags=["endpoints"])
def get_endpoint(endpoint: EndpointDep):
    """One endpoint. 404 if unknown, 403 when its room is outside an operator's units."""
    return service.endpoint_public(*endpoint)


@router.post("/endpoints", response_model=schemas.EndpointPublic, status_code=status.HTTP_201_CREATED,
             tags=["endpoints"])
def create_endpoint(data: schemas.EndpointCreate, session: SessionDep, principal: CurrentPrincipal):
    """Admin only. 409 ``duplicate_serial``; 422 ``unknown_room`` / ``invalid_dial_address``."""
    return _answer(schemas.EndpointPublic, service.endpoint_public(*service.create_endpoint(session, principal, data)),
                   status.HTTP_201_CREATED)


@router.patch("/endpoints/{endpoint_id}", response_model=schemas.EndpointPublic, tags=["endpoints"])
def update_endpoint(endpoint: EndpointDep, data: schemas.EndpointUpdate, session: SessionDep,
                    principal: CurrentPrincipal):
    return _answer(schemas.EndpointPublic,
                   service.endpoint_public(*service.update_endpoint(session, principal, endpoint[0], data)))


@router.delete("/endpoints/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["endpoints"])
def delete_endpoint(endpoint: EndpointDep, session: SessionDep, principal: CurrentPrincipal):
    service.delete_endpoint(session, principal, endpoint[0])
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- bridges

@router.get("/bridges", response_model=schemas.Page[schemas.BridgePublic], tags=["bridges"])
def list_bridges(session: SessionDep, principal: CurrentPrincipal, paging: PagingDep):
    items, total = service.list_bridges(session, principal, limit=paging.limit, offset=paging.offset)
    return _paged(items, total, paging)


@router.get("/bridges/{bridge_id}", response_model=schemas.BridgePublic, tags=["bridges"])
def get_bridge(bridge: BridgeDep):
    return bridge


@router.post("/bridges", response_model=schemas.BridgePublic, status_code=status.HTTP_201_CREATED, tags=["bridges"])
def create_bridge(data: schemas.BridgeCreate, session: SessionDep, principal: CurrentPrincipal):
    """Admin only. 409 ``duplicate_bridge_name``."""
    return _answer(schemas.BridgePublic, service.create_bridge(session, principal, data), status.HTTP_201_CREATED)


# PATCH /bridges/{bridge_id} is scheduling's (scheduling/routes.py): a lower capacity is checked
# against what is booked (SPEC rule 2), which inventory cannot see.
