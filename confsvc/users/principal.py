"""Who is asking, and what they may touch: the one place permission rules live.

Every "may this person do X" of the API and the pages is a capability here (SPEC "Who uses it");
no module outside ``users/`` compares roles (tests/core/test_architecture.py checks it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from confsvc.errors import Forbidden, NotFound
from confsvc.users.models import Role


@dataclass(frozen=True)
class Capability:
    """Something a role may do: ``roles`` lists the roles that may, in the order errors name them."""

    name: str
    roles: tuple[Role, ...]


BOOK = Capability("book", (Role.admin, Role.secretariat))  # book, check, edit, cancel meetings and occurrences
MANAGE_MAINTENANCE = Capability("manage_maintenance", (Role.admin, Role.secretariat, Role.operator))  # op: own units
MANAGE_INVENTORY = Capability("manage_inventory", (Role.admin,))  # units, rooms, endpoints, bridges, CSV, agents
MANAGE_USERS = Capability("manage_users", (Role.admin,))  # users: create, change, move between provinces
REPORT_ENDPOINT_STATUS = Capability("report_endpoint_status", (Role.admin, Role.operator))
MANAGE_FEEDS = Capability("manage_feeds", (Role.admin, Role.secretariat, Role.operator))  # op: inside own units
MANAGE_PROVINCE_FEEDS = Capability("manage_province_feeds", (Role.admin, Role.secretariat))  # and scopes now gone
MANAGE_DISPLAY_TOKENS = Capability("manage_display_tokens", (Role.admin, Role.secretariat))
MARK_READINESS = Capability("mark_readiness", (Role.admin, Role.secretariat, Role.operator))  # op: own units' sites
REPORT_CALLS = Capability("report_calls", (Role.admin, Role.secretariat))  # call events as a signed-in user
MARK_ATTENDANCE = Capability("mark_attendance", (Role.admin, Role.secretariat, Role.operator))  # op: own units
SEE_SECRETARIAT_CHANNEL = Capability("see_secretariat_channel", (Role.admin, Role.secretariat, Role.viewer))
SEE_MAIL_DELIVERIES = Capability("see_mail_deliveries", (Role.admin, Role.secretariat))
SEE_BRIDGE_STATISTICS = Capability("see_bridge_statistics", (Role.admin, Role.secretariat, Role.viewer))
#: Book over lower-priority occurrences after confirmation (SPEC rule 10, ``scheduling.displacement``).
DISPLACE = Capability("displace", (Role.admin, Role.secretariat))
SEE_CONFIDENTIAL = Capability("see_confidential", (Role.admin, Role.secretariat))  # every mật meeting's details
#: Add or remove sites of a national meeting (issue 14): the national office any, any time; a province's
#: admin and secretariat only their province's, until the meeting's ``sites_deadline``
#: (:meth:`Principal.require_sites_change`); and see that province's busy rooms for it.
CHANGE_PROVINCE_SITES = Capability("change_province_sites", (Role.admin, Role.secretariat))


class _HasStatus(Protocol):
    status: Any


@dataclass(frozen=True)
class Principal:
    """An authenticated user.

    ``unit_ids`` is every unit the principal sees, sub-units expanded; ``None`` means the whole
    deployment. An operator's (or requester's) are their assigned units; for the other roles they are
    ``scope``.

    ``scope`` is the tenant (issue 14): the units of the user's province (``province_id``), or ``None``
    for a national user (no province: e.g. Văn phòng Chính phủ's secretariat, who sees and books
    across provinces) and for any user of a deployment holding a single province (which behaves as
    before provinces were tenants). Every read and write of a province's
    objects is checked against it here — :meth:`in_scope`, :meth:`require_in_scope`, :meth:`scope_filter`
    — and nowhere else.
    """

    user_id: int
    username: str
    role: Role
    unit_ids: frozenset[int] | None
    province_id: int | None = None
    scope: frozenset[int] | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

    def can(self, capability: Capability) -> bool:
        return self.role in capability.roles

    def require(self, capability: Capability) -> None:
        """Raises Forbidden (``forbidden_role``) unless the principal has ``capability``."""
        self.require_role(*capability.roles)

    @property
    def can_book(self) -> bool:
        return self.can(BOOK)

    def can_edit(self, meeting: _HasStatus) -> bool:
        """May edit ``meeting`` now: a booker, and the meeting is not cancelled."""
        return self.can_book and _status(meeting) != "cancelled"

    def can_cancel(self, meeting: _HasStatus) -> bool:
        """May cancel ``meeting`` (or one of its occurrences) now: a booker, and it is not cancelled."""
        return self.can_book and _status(meeting) != "cancelled"

    @property
    def can_displace(self) -> bool:
        """May book over lower-priority occurrences (they become tentative): admin, secretariat."""
        return self.can(DISPLACE)

    @property
    def can_manage_feeds(self) -> bool:
        return self.can(MANAGE_FEEDS)

    @property
    def can_manage_province_feeds(self) -> bool:
        return self.can(MANAGE_PROVINCE_FEEDS)

    @property
    def can_manage_inventory(self) -> bool:
        return self.can(MANAGE_INVENTORY)

    @property
    def can_manage_display_tokens(self) -> bool:
        return self.can(MANAGE_DISPLAY_TOKENS)

    def can_mark_readiness(self, unit_id: int) -> bool:
        """May mark the readiness of a site of ``unit_id``."""
        return self.can(MARK_READINESS) and self.can_see_unit(unit_id)

    @property
    def marks_own_sites(self) -> bool:
        """Marks the readiness of the sites of some units only (an operator): their web home lists
        their own rooms' next meetings with the marking buttons first."""
        return self.can(MARK_READINESS) and self.unit_ids is not None

    @property
    def oversees_readiness(self) -> bool:
        """Marks and follows the readiness of every site (admin, secretariat): their web home is the
        board of today's and tomorrow's meetings, problems first."""
        return self.can(MARK_READINESS) and self.unit_ids is None

    @property
    def can_report_calls(self) -> bool:
        return self.can(REPORT_CALLS)

    @property
    def can_see_secretariat_channel(self) -> bool:
        return self.can(SEE_SECRETARIAT_CHANNEL)

    @property
    def can_see_mail_deliveries(self) -> bool:
        return self.can(SEE_MAIL_DELIVERIES)

    @property
    def can_see_bridge_statistics(self) -> bool:
        return self.can(SEE_BRIDGE_STATISTICS)

    @property
    def can_start_in_past(self) -> bool:
        """Admins may book or move a meeting to a start in the past (corrections)."""
        return self.is_admin

    def require_role(self, *roles: Role) -> None:
        """Raises Forbidden unless the principal has one of ``roles``."""
        if self.role not in roles:
            raise Forbidden(
                f"role {self.role.value!r} may not do this (needs {', '.join(r.value for r in roles)})",
                code="forbidden_role",
            )

    # Office (issue 15): saved site groups and the audit trail.
    @property
    def can_manage_site_groups(self) -> bool:
        """May save site groups: admin, secretariat, operator (an operator only with rooms of their units)."""
        return self.role in (Role.admin, Role.secretariat, Role.operator)

    @property
    def can_read_audit(self) -> bool:
        """May read the audit trail: admin and secretariat (only meetings of their units when scoped)."""
        return self.role in (Role.admin, Role.secretariat)

    # Requests and approval (issue 15).
    @property
    def can_request_meetings(self) -> bool:
        """May submit meeting requests: requesters (chair room in their units), and the secretariat
        and admin on a unit's behalf."""
        return self.role in (Role.requester, Role.secretariat, Role.admin)

    @property
    def can_decide_requests(self) -> bool:
        """May approve or reject requests (the queue): admin and secretariat."""
        return self.role in (Role.admin, Role.secretariat)

    @property
    def is_requester(self) -> bool:
        """Sees only the requests they submitted."""
        return self.role is Role.requester

    @property
    def unit_scoped(self) -> bool:
        """Acts only within assigned units (operators, requesters), not a whole province."""
        return self.role in (Role.operator, Role.requester)

    @property
    def national(self) -> bool:
        """Sees and acts across provinces (no tenant scope)."""
        return self.scope is None

    def in_scope(self, unit_id: int | None) -> bool:
        """``unit_id`` is inside the principal's province (``None``, a unit-less object such as a shared
        bridge, is inside every province)."""
        return self.scope is None or unit_id is None or unit_id in self.scope

    def require_in_scope(self, unit_id: int | None, what: str = "object") -> None:
        """Raises NotFound (404, ``not_found``) for an object of another province: its existence is not
        revealed (issue 14)."""
        if not self.in_scope(unit_id):
            raise NotFound(f"{what} not found")

    def scope_filter(self, unit_column: Any, *, shared: bool = False) -> Any:
        """SQL condition keeping the rows whose ``unit_column`` is inside the principal's province
        (``sa.true()`` without a scope); ``shared`` also keeps NULL (objects of no province)."""
        if self.scope is None:
            return sa.true()
        inside = unit_column.in_(sorted(self.scope))
        return sa.or_(unit_column.is_(None), inside) if shared else inside

    def units_filter(self, unit_column: Any) -> Any:
        """SQL condition keeping rows whose ``unit_column`` the principal sees (``unit_ids``)."""
        return sa.true() if self.unit_ids is None else unit_column.in_(sorted(self.unit_ids))

    # National meetings (issue 14): provinces' own sites until a deadline, their busy rooms.
    @property
    def can_open_sites_to_provinces(self) -> bool:
        """May set a meeting's ``sites_deadline`` (let provinces change their own sites until then): a
        national booker."""
        return self.can_book and self.national

    def require_sites_change(self, *, sites_deadline: datetime | None, now: datetime,
                             site_unit_ids: Iterable[int | None], deadline_text: str = "") -> None:
        """May add or remove the sites whose rooms lie in ``site_unit_ids`` (units) of a meeting whose
        provinces' deadline is ``sites_deadline`` (UTC), at ``now`` (UTC)? The one rule (issue 14):

        - a national booker (admin, secretariat of no province): any site, any time (as a whole edit);
        - a province's admin or secretariat: only sites of its own province, and only while
          ``now < sites_deadline`` (half-open: at the deadline it is over); never a meeting without one.

        ``deadline_text`` is the deadline as people read it (local time), put in the refusal.

        Raises:
            Forbidden: ``forbidden_role`` (not admin/secretariat), ``sites_not_open`` (no deadline on the
                meeting), ``sites_deadline_passed`` (with ``sites_deadline``, ISO UTC),
                ``forbidden_province_site`` (a site of another province; with ``unit_id``).
        """
        self.require(CHANGE_PROVINCE_SITES)
        if self.national:
            return
        if sites_deadline is None:
            raise Forbidden("this meeting is not open to the provinces' sites: the national office changes it",
                            code="sites_not_open")
        if now >= sites_deadline:
            when = deadline_text or sites_deadline.isoformat()
            raise Forbidden(f"the deadline for the provinces' sites passed at {when} "
                            f"({sites_deadline.isoformat().replace('+00:00', 'Z')})",
                            code="sites_deadline_passed", sites_deadline=sites_deadline.isoformat())
        for unit_id in site_unit_ids:
            if unit_id is None or not self.in_scope(unit_id):
                raise Forbidden("a province changes only its own sites: this room is in another province",
                                code="forbidden_province_site", unit_id=unit_id)

    def sees_busy_rooms_of(self, province_id: int | None) -> bool:
        """Sees the busy rooms (which, taken by what) of ``province_id`` for a national meeting: that
        province's admin and secretariat only; the national office sees each province's counts
        (issue 14: "its busy rooms are listed to it, not to the national operator")."""
        return (self.can(CHANGE_PROVINCE_SITES) and not self.national and province_id is not None
                and province_id == self.province_id)

    def can_see_unit(self, unit_id: int) -> bool:
        return self.unit_ids is None or unit_id in self.unit_ids

    def require_unit(self, unit_id: int) -> None:
        """Raises Forbidden when ``unit_id`` is outside the principal's scope (SPEC: scoped permissions);
        NotFound when it is outside their province (issue 14: another tenant's objects are not revealed)."""
        self.require_in_scope(unit_id, "unit")
        if not self.can_see_unit(unit_id):
            raise Forbidden("outside your units", code="forbidden_scope")


def _status(meeting: _HasStatus) -> str:
    status = meeting.status
    return str(getattr(status, "value", status))
