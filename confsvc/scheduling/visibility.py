"""What someone may see of a meeting: the one rule for confidential meetings (mật, SPEC "Confidential
meeting"), used by the API (list, detail, invite, join instructions), the calendar feeds, the live
channel (snapshots, events and their replay, :func:`mark_as_now`) and the web pages. Pure: values in, values out.

The rule (:func:`sees_details`): a confidential meeting's details — title, description, dial strings,
conference number, PIN — are seen only by the admin and the secretariat, and by an audience standing
for one of the meeting's participants' units (the units of its chair room and participating rooms).
Everyone else sees "Cuộc họp" with its time and its room(s) only.

Who stands for which units (:class:`Audience`):

- a user: admin and secretariat everything; an operator their units (sub-units included, as for
  every scoped read); a viewer none (leaders and auditors read the schedule, not the secrets);
- a room display token: its room's unit;
- a feed token: the unit of its room or endpoint, or the unit it names (exactly: a parent unit's
  feed is not a participant because one of its sub-units is; a province feed sees the details of
  meetings only when a province-level room takes part).

Non-confidential meetings are unaffected.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confsvc.users.principal import SEE_CONFIDENTIAL, Principal

#: What a confidential meeting is called for those outside it.
CONFIDENTIAL_TITLE = "Cuộc họp"


@dataclass(frozen=True)
class Audience:
    """Who is looking: ``everything`` (admin, secretariat) or the units they stand for."""

    everything: bool = False
    unit_ids: frozenset[int] = frozenset()

    @classmethod
    def of_principal(cls, principal: Principal) -> Audience:
        if principal.can(SEE_CONFIDENTIAL):
            return cls(everything=True)
        return cls(unit_ids=frozenset(principal.unit_ids or ()))

    @classmethod
    def of_units(cls, unit_ids: Iterable[int]) -> Audience:
        return cls(unit_ids=frozenset(unit_ids))


EVERYONE = Audience(everything=True)


def sees_details(audience: Audience, *, confidential: bool, participant_unit_ids: Iterable[int]) -> bool:
    """True when ``audience`` may see the title, description, dial strings and PIN of a meeting."""
    return not confidential or audience.everything or not audience.unit_ids.isdisjoint(participant_unit_ids)


def redact_meeting(data: dict[str, Any]) -> dict[str, Any]:
    """A meeting's API shape (``MeetingPublic``) as outsiders see it: "Cuộc họp", times and rooms."""
    return {**data, "title": CONFIDENTIAL_TITLE, "description": "", "pin": "", "conference_number": None,
            "bridge_id": None, "upstream_dial": None, "cascade_bridges": []}


def redact_join(item: dict[str, Any]) -> dict[str, Any]:
    """A ``join.instructions`` item without title, conference number, PIN or dial strings; its text
    keeps the room, the meeting time and the technical-check time."""
    lines = str(item.get("text", "")).split("\n")
    text = "\n".join([f"Hướng dẫn kết nối – {CONFIDENTIAL_TITLE}", *lines[1:4]])
    return {**item, "title": CONFIDENTIAL_TITLE, "conference_number": None, "pin": "", "sip_uri": None,
            "h323_number": None, "text": text, "bridge_name": None, "upstream_dial": None,
            "endpoints": [{**e, "dial_string": None, "call_address": None} for e in item.get("endpoints", [])]}


def mark(data: dict[str, Any], *, confidential: bool, participant_unit_ids: Iterable[int]) -> dict[str, Any]:
    """Event data of a confidential meeting carries ``confidential`` and ``participant_unit_ids`` so the
    live channel can decide per subscriber (:func:`visible_message`); others are left as they are."""
    if not confidential:
        return data
    return {**data, "confidential": True, "participant_unit_ids": sorted(set(participant_unit_ids))}


def mark_as_now(message: dict[str, Any], confidential_now: Mapping[int, Iterable[int]]) -> dict[str, Any]:
    """A replayed live message as if recorded now: one carrying a ``title`` of a meeting that is
    confidential now (``confidential_now``: meeting id → its participant unit ids) but was not when
    the event was recorded gets :func:`mark`-ed, so :func:`visible_message` hides the title from
    outsiders; others are left as they are. (A meeting made confidential later must not leak its
    title through a ``since`` resume.)"""
    data = message.get("data")
    if not isinstance(data, dict) or data.get("confidential") or "title" not in data:
        return message
    units = confidential_now.get(data.get("meeting_id"))  # type: ignore[arg-type]
    if units is None:
        return message
    return {**message, "data": mark(data, confidential=True, participant_unit_ids=units)}


def visible_message(audience: Audience, message: dict[str, Any]) -> dict[str, Any]:
    """A live message (``{"id", "type", "at", "data"}``) as ``audience`` may receive it."""
    data = message.get("data")
    if not isinstance(data, dict) or not data.get("confidential"):
        return message
    if sees_details(audience, confidential=True, participant_unit_ids=data.get("participant_unit_ids", ())):
        return message
    if message.get("type") == "join.instructions":
        hidden = redact_join(data)
    else:
        hidden = {**data, "title": CONFIDENTIAL_TITLE}
    hidden.pop("participant_unit_ids", None)
    return {**message, "data": hidden}
