"""The office's routers in one: the invitation (giấy mời), site groups, meeting requests and the audit log.
``create_app`` includes this one router."""

from __future__ import annotations

from fastapi import APIRouter

from confsvc.scheduling import invitation_routes, request_routes, site_group_routes

router = APIRouter()
router.include_router(invitation_routes.router)
router.include_router(site_group_routes.router)
router.include_router(request_routes.router)
