"""Who is asking, and what they may touch: the one place permission rules live."""

from __future__ import annotations

from dataclasses import dataclass

from confsvc.errors import Forbidden
from confsvc.users.models import Role


@dataclass(frozen=True)
class Principal:
    """An authenticated user.

    ``unit_ids`` is the operator's (or requester's) scope with every sub-unit expanded; ``None`` means the
    whole deployment (admin, secretariat, viewer).
    """

    user_id: int
    username: str
    role: Role
    unit_ids: frozenset[int] | None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.admin

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

    def can_see_unit(self, unit_id: int) -> bool:
        return self.unit_ids is None or unit_id in self.unit_ids

    def require_unit(self, unit_id: int) -> None:
        """Raises Forbidden when ``unit_id`` is outside the principal's scope (SPEC: scoped permissions)."""
        if not self.can_see_unit(unit_id):
            raise Forbidden("outside your units", code="forbidden_scope")
