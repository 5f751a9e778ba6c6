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
