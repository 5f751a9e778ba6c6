"""Readiness (sẵn sàng) in the web UI: the board of the next meeting on the dashboard, the readiness
column and marking form of the meeting page, and the live channels a dashboard listens to.

Values only: the rules (who marks which site, a problem needs a note, no marking after the end) live
in ``scheduling.readiness``; this module shapes its board for templates, in the request's language.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from confsvc.config import Settings
from confsvc.endpoints import service as inventory
from confsvc.scheduling import readiness, reading
from confsvc.scheduling.models import ReadinessState
from confsvc.users.principal import Principal
from confsvc.web import i18n
from confsvc.web.i18n import N_, _

STATE_LABELS = {ReadinessState.not_checked: N_("Not checked"), ReadinessState.ready: N_("Ready"),
                ReadinessState.problem: N_("Problem"), ReadinessState.connected: N_("Connected")}
#: States a person marks on the meeting page ("connected" comes from the call records).
MARKABLE = (ReadinessState.ready, ReadinessState.problem)
#: Refusals of ``scheduling.readiness.set_readiness`` in words (by error code).
REFUSALS = {
    "note_required": N_("Describe the problem in the note."),
    "occurrence_ended": N_("This occurrence has ended; its readiness can no longer be changed."),
    "occurrence_cancelled": N_("This occurrence is cancelled."),
    "site_not_in_occurrence": N_("This room is not a site of the meeting."),
    "forbidden_scope": N_("You may mark only the rooms of your units."),
    "forbidden_role": N_("Your role may not mark readiness."),
    "invalid_state": N_("Choose “Ready” or “Problem”."),
}


def refusal_text(code: str, detail: str) -> str:
    """A refusal's message in the request's language (the service's English detail otherwise)."""
    return _(REFUSALS[code]) if code in REFUSALS else detail


def board_view(session: Session, settings: Settings, meeting_id: int, occurrence_id: int, principal: Principal,
               *, now: datetime) -> dict[str, Any]:
    """``scheduling.readiness.board`` of one occurrence shaped for templates.

    Shape: ``{"meeting_id", "occurrence_id", "deadline" (local HH:MM), "overdue", "ready" (sites ready
    or connected), "total", "sites": [{"room_id", "room_name", "unit_id", "is_chair", "state", "label", "note",
    "updated" (local HH:MM or ""), "markable"}]}``; ``markable`` is true for the sites ``principal``
    may mark (admin and secretariat: all; operators: their units'; viewers: none).
    Raises NotFound / Forbidden like ``scheduling.reading.get_meeting``.
    """
    zone: ZoneInfo = settings.zone
    meeting = reading.get_meeting(session, principal, meeting_id)
    occurrence = reading.get_occurrence(session, meeting, occurrence_id)
    data = readiness.board(session, settings, meeting, occurrence, now=now)
    sites = [{"room_id": s["room_id"], "room_name": s["room_name"], "unit_id": s["unit_id"], "is_chair": s["is_chair"],
              "state": s["state"].value, "label": _(STATE_LABELS[s["state"]]), "note": s["note"],
              "updated": i18n.fmt_time(s["updated_at"], zone) if s["updated_at"] else "",
              "markable": principal.can_mark_readiness(s["unit_id"])} for s in data["sites"]]
    return {"meeting_id": meeting.id, "occurrence_id": occurrence.id,
            "deadline": i18n.fmt_time(data["deadline"], zone), "overdue": data["overdue"],
            "ready": sum(1 for s in data["sites"] if s["state"] in readiness.READY_STATES),
            "total": len(sites), "sites": sites}


def state_options() -> list[dict[str, str]]:
    return [{"value": s.value, "label": _(STATE_LABELS[s])} for s in MARKABLE]


def live_channels(session: Session, principal: Principal) -> list[str]:
    """The WebSocket paths a dashboard listens to: ``/ws/secretariat`` for admin, secretariat and
    viewer; for an operator ``/ws/units/{id}`` of each top unit of their scope (a unit's channel
    carries its sub-units' events, so no event arrives twice)."""
    if not principal.unit_scoped:
        return ["/ws/secretariat"]
    units, _total = inventory.list_units(session, principal, limit=100000)
    tops = sorted(u.id for u in units if u.parent_id not in (principal.unit_ids or ()))
    return [f"/ws/units/{unit_id}" for unit_id in tops]
