"""Site groups API under ``/api/v1/site-groups`` (nhóm điểm cầu). Routes parse, call one service
function and shape the answer (see ``scheduling.site_groups`` for who sees and changes what)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from confsvc.db import PathId, SessionDep
from confsvc.deps import PagingDep
from confsvc.scheduling import site_groups
from confsvc.scheduling.schemas import Page
from confsvc.scheduling.site_groups import SiteGroupCreate, SiteGroupPublic, SiteGroupUpdate
from confsvc.users.deps import CurrentPrincipal

router = APIRouter(prefix="/api/v1/site-groups", tags=["site groups"])


def _one(session: SessionDep, principal: CurrentPrincipal, group: site_groups.SiteGroup) -> Response:
    body = SiteGroupPublic.model_validate(site_groups.public(session, principal, [group])[0])
    return Response(body.model_dump_json(), media_type="application/json")


@router.get("", response_model=Page[SiteGroupPublic])
def list_site_groups(session: SessionDep, principal: CurrentPrincipal, paging: PagingDep):
    """Groups the caller may see, by name, with their rooms."""
    groups, total = site_groups.list_groups(session, principal, limit=paging.limit, offset=paging.offset)
    return {"items": site_groups.public(session, principal, groups), "total": total, "limit": paging.limit,
            "offset": paging.offset}


@router.post("", response_model=SiteGroupPublic, status_code=status.HTTP_201_CREATED)
def create_site_group(data: SiteGroupCreate, session: SessionDep, principal: CurrentPrincipal):
    """Save a group owned by the caller. 403 role/scope, 409 ``site_group_name_taken``, 422 rooms."""
    response = _one(session, principal, site_groups.create_group(session, principal, data))
    response.status_code = status.HTTP_201_CREATED
    return response


@router.get("/{group_id}", response_model=SiteGroupPublic)
def get_site_group(group_id: PathId, session: SessionDep, principal: CurrentPrincipal):
    """One group; 404 ``site_group_not_found`` when unknown or not visible."""
    return _one(session, principal, site_groups.get_group(session, principal, group_id))


@router.patch("/{group_id}", response_model=SiteGroupPublic)
def update_site_group(group_id: PathId, data: SiteGroupUpdate, session: SessionDep, principal: CurrentPrincipal):
    """Change a group (owner or admin, else 403 ``not_group_owner``); booked meetings are untouched."""
    group = site_groups.get_group(session, principal, group_id)
    return _one(session, principal, site_groups.update_group(session, principal, group, data))


@router.delete("/{group_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_site_group(group_id: PathId, session: SessionDep, principal: CurrentPrincipal) -> Response:
    """Delete a group (owner or admin); booked meetings are untouched."""
    site_groups.delete_group(session, principal, site_groups.get_group(session, principal, group_id))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
