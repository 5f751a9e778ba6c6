"""``PATCH /api/v1/users/{user_id}``: an administrator's change of a user, audited (``scheduling.user_changes``).
Here, not in ``users.routes``, because the audit trail is scheduling's (``audit_log``)."""

from __future__ import annotations

from types import EllipsisType

from fastapi import APIRouter

from confsvc.db import PathId, SessionDep
from confsvc.scheduling import user_changes
from confsvc.users import schemas
from confsvc.users import service as users
from confsvc.users.deps import CurrentPrincipal
from confsvc.users.principal import MANAGE_USERS
from confsvc.users.routes import public_user

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.patch("/users/{user_id}", response_model=schemas.UserPublic)
def update_user(user_id: PathId, data: schemas.UserUpdate, session: SessionDep, principal: CurrentPrincipal):
    """Admin only: change ``role``, disable (``active: false``) or enable, set ``password``, or move the
    user to another province (``province_code``, the official code of a unit of level province; ``null``
    makes a national user). Any change ends the user's web sessions (and live channels); audited
    ``user.updated``. Only an administrator without a province scope changes a province (issue 14).

    404 ``user_not_found`` (also a user of another province); 403 ``province_outside_scope``;
    422 ``weak_password`` / ``operator_without_units`` / ``units_for_unscoped_role`` / ``own_admin_access`` /
    ``unknown_unit`` / ``not_a_province`` / ``units_outside_province``."""
    principal.require(MANAGE_USERS)  # before any lookup
    province_id: int | None | EllipsisType = ...
    if "province_code" in data.model_fields_set:
        province_id = users.unit_ids_for_codes(session, [data.province_code])[0] if data.province_code else None
    user = user_changes.update_user(session, principal, user_id, role=data.role, active=data.active,
                                    password=data.password, province_id=province_id)
    return public_user(session, user)
