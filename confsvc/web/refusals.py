"""Service refusals (``ConfsvcError.code``) in the page's language.

Services speak English in ``detail`` (the API's audience); pages show these messages instead,
translated through the catalog. A code not listed here falls back to the service's detail.
"""

from __future__ import annotations

from confsvc.errors import ConfsvcError
from confsvc.web.i18n import N_, _

REFUSALS = {
    "end_not_after_start": N_("The end must be after the start."),
    "duration_too_long": N_("The meeting is longer than the maximum allowed."),
    "invalid_duration": N_("The duration is not valid."),
    "start_in_past": N_("The start is in the past."),
    "beyond_booking_horizon": N_("The meeting starts too far ahead to be booked now."),
    "check_lead_too_long": N_("The technical check lead is longer than allowed."),
    "teardown_too_long": N_("The teardown buffer is longer than allowed."),
    "duplicate_participant": N_("A site is listed twice (the chair room takes part already)."),
    "unknown_room": N_("A chosen room does not exist."),
    "invalid_room_id": N_("A chosen room is not one of the list: choose the rooms again."),
    "room_not_found": N_("A chosen room does not exist."),
    "unknown_endpoint": N_("A chosen endpoint does not exist."),
    "endpoint_not_found": N_("A chosen endpoint does not exist."),
    "endpoint_not_bookable": N_("An endpoint is in maintenance or retired and cannot be booked."),
    "no_participants": N_("The meeting has no active endpoint."),
    "no_bridge": N_("No MCU can host this meeting."),
    "unknown_bridge": N_("No MCU can host this meeting."),
    "occurrences_overlap": N_("Two occurrences of the series would overlap."),
    "occurrence_cancelled": N_("The occurrence is cancelled."),
    "meeting_cancelled": N_("The meeting is cancelled."),
    "rrule_without_end": N_("A repeating meeting needs an end (a count or a last date)."),
    "invalid_rrule": N_("The repetition rule is not valid."),
    "invalid_count": N_("The number of occurrences is not valid."),
    "no_occurrences": N_("The repetition gives no occurrence."),
    "duplicate_room_name": N_("The unit already has a room with this name."),
    "invalid_dial_address": N_("The dial address does not match the protocol."),
    "duplicate_serial": N_("An endpoint with this serial number exists already."),
    "forbidden_scope": N_("This is outside your units."),
    "forbidden_role": N_("Your role may not do this."),
    "request_not_pending": N_("The request was approved, rejected or expired already."),
    "request_not_found": N_("The request does not exist."),
    "reason_required": N_("Give a reason for the rejection."),
}


def refusal_message(exc: ConfsvcError) -> str:
    """``exc`` as a sentence for the page: the translated message of its code, else its detail."""
    return _(REFUSALS[exc.code]) if exc.code in REFUSALS else exc.detail
