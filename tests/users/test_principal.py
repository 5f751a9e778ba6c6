"""Capabilities on ``Principal`` (users/principal.py): who may do what, written once (SPEC "Who uses it")."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from confsvc.errors import Forbidden
from confsvc.users import principal as capabilities
from confsvc.users.models import Role
from confsvc.users.principal import Principal

ADMIN, SECRETARIAT, OPERATOR, VIEWER = Role.admin, Role.secretariat, Role.operator, Role.viewer


def _who(role: Role, unit_ids: frozenset[int] | None = None) -> Principal:
    return Principal(user_id=1, username="u", role=role,
                     unit_ids=unit_ids if role is OPERATOR else None)


@pytest.mark.parametrize(("name", "allowed"), [
    ("can_book", {ADMIN, SECRETARIAT}),
    ("can_manage_feeds", {ADMIN, SECRETARIAT, OPERATOR}),
    ("can_manage_province_feeds", {ADMIN, SECRETARIAT}),
    ("can_manage_inventory", {ADMIN}),
    ("can_manage_display_tokens", {ADMIN, SECRETARIAT}),
    ("can_report_calls", {ADMIN, SECRETARIAT}),
    ("can_see_secretariat_channel", {ADMIN, SECRETARIAT, VIEWER}),
    ("can_see_mail_deliveries", {ADMIN, SECRETARIAT}),
    ("can_see_bridge_statistics", {ADMIN, SECRETARIAT, VIEWER}),
    ("can_start_in_past", {ADMIN}),
])
def test_capability_by_role(name: str, allowed: set[Role]) -> None:
    assert {role for role in Role if getattr(_who(role, frozenset({1})), name)} == allowed


def test_edit_and_cancel_need_a_booker_and_an_open_meeting() -> None:
    confirmed, cancelled = SimpleNamespace(status="confirmed"), SimpleNamespace(status="cancelled")
    assert [(r.value, _who(r).can_edit(confirmed), _who(r).can_cancel(confirmed), _who(r).can_edit(cancelled),
             _who(r).can_cancel(cancelled)) for r in Role] == [
        ("admin", True, True, False, False), ("secretariat", True, True, False, False),
        ("operator", False, False, False, False), ("viewer", False, False, False, False),
        ("requester", False, False, False, False)]


def test_readiness_marking_is_scoped_to_the_operators_units() -> None:
    operator = _who(OPERATOR, frozenset({7}))
    assert (operator.can_mark_readiness(7), operator.can_mark_readiness(8)) == (True, False)
    assert (_who(SECRETARIAT).can_mark_readiness(8), _who(VIEWER).can_mark_readiness(8)) == (True, False)


def test_refusal_names_the_roles_as_before() -> None:
    with pytest.raises(Forbidden) as exc:
        _who(VIEWER).require(capabilities.BOOK)
    assert (exc.value.code, exc.value.detail) == ("forbidden_role",
                                                  "role 'viewer' may not do this (needs admin, secretariat)")
    with pytest.raises(Forbidden) as exc:
        _who(OPERATOR, frozenset({1})).require(capabilities.SEE_SECRETARIAT_CHANNEL)
    assert exc.value.detail == "role 'operator' may not do this (needs admin, secretariat, viewer)"


# ---------------------------------------------------------------- national meetings' sites (issue 14)

def _province_user(role: Role, province_id: int | None, scope: frozenset[int] | None) -> Principal:
    return Principal(user_id=1, username="u", role=role, unit_ids=frozenset(scope or ()) if role is OPERATOR else None,
                     province_id=province_id, scope=scope)


@pytest.mark.parametrize(("who", "deadline_hours", "units", "code"), [
    (("secretariat", None, None), None, [25, 1], None),  # the national office: any site, no deadline needed
    (("secretariat", None, None), -1, [25], None),  # … and after the deadline
    (("secretariat", 25, frozenset({25, 250})), 1, [250, 25], None),  # its own province, before the deadline
    (("admin", 25, frozenset({25, 250})), 1, [250], None),
    (("secretariat", 25, frozenset({25, 250})), 0, [250], "sites_deadline_passed"),  # [.., deadline): at it, over
    (("secretariat", 25, frozenset({25, 250})), -1, [250], "sites_deadline_passed"),
    (("secretariat", 25, frozenset({25, 250})), 1, [250, 1], "forbidden_province_site"),
    (("secretariat", 25, frozenset({25, 250})), 1, [None], "forbidden_province_site"),  # a room of no province
    (("secretariat", 25, frozenset({25, 250})), None, [250], "sites_not_open"),
    (("operator", 25, frozenset({25, 250})), 1, [250], "forbidden_role"),
    (("viewer", None, None), 1, [250], "forbidden_role"),
])
def test_who_may_change_which_sites_of_a_national_meeting_until_when(who, deadline_hours, units, code) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 12, 14, 1, 0, tzinfo=UTC)
    principal = _province_user(Role(who[0]), who[1], who[2])
    deadline = None if deadline_hours is None else now + timedelta(hours=deadline_hours)
    try:
        principal.require_sites_change(sites_deadline=deadline, now=now, site_unit_ids=units,
                                       deadline_text="08:00 14/12/2026")
        refused = None
    except Forbidden as exc:
        refused = exc.code
        if exc.code == "sites_deadline_passed":
            assert exc.detail == ("the deadline for the provinces' sites passed at 08:00 14/12/2026 "
                                  f"({deadline.isoformat().replace('+00:00', 'Z')})")
    assert refused == code


def test_busy_rooms_are_seen_by_their_own_province_only() -> None:
    national = _province_user(SECRETARIAT, None, None)
    phutho = _province_user(SECRETARIAT, 25, frozenset({25, 250}))
    operator = _province_user(OPERATOR, 25, frozenset({25, 250}))
    assert [(p.sees_busy_rooms_of(25), p.sees_busy_rooms_of(1)) for p in (national, phutho, operator)] == [
        (False, False), (True, False), (False, False)]
    assert [p.can_open_sites_to_provinces for p in (national, phutho, operator)] == [True, False, False]
