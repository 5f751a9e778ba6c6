"""Mail route: ``GET /api/v1/mail/status`` (is the invitation outbox on, and how is it doing)."""

from __future__ import annotations

from fastapi import APIRouter

from confsvc.deps import SettingsDep
from confsvc.db import SessionDep
from confsvc.mail import outbox as mail
from confsvc.users.deps import CurrentPrincipal

router = APIRouter()


@router.get("/api/v1/mail/status", tags=["mail"])
def mail_status(session: SessionDep, principal: CurrentPrincipal, settings: SettingsDep) -> dict:
    """Whether invitations are e-mailed: ``{"enabled": bool, "message": <Vietnamese>}``, mail being off
    without ``CONFSVC_SMTP_HOST``; admin and secretariat also see ``pending``/``sent``/``failed``
    delivery counts and ``last_error`` of the outbox. 401 without a token."""
    return mail.status(session, settings, principal)
