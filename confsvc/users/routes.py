"""Users, API tokens and password login under ``/api/v1``."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response, status
from sqlmodel import select

from confsvc.db import PathId, SessionDep
from confsvc.users import schemas, service
from confsvc.users.deps import CurrentPrincipal
from confsvc.users.models import Role, User, UserUnit

router = APIRouter(prefix="/api/v1", tags=["users"])


def public_user(session, user: User) -> schemas.UserPublic:
    unit_ids = list(session.exec(select(UserUnit.unit_id).where(UserUnit.user_id == user.id)).all())
    return schemas.UserPublic.model_validate({**user.model_dump(), "unit_ids": sorted(unit_ids)})


@router.post("/auth/token", response_model=schemas.TokenIssued, status_code=status.HTTP_201_CREATED)
def login(data: schemas.LoginRequest, session: SessionDep, request: Request):
    """Exchange a username and password for a bearer token that expires after
    ``settings.login_token_ttl_hours``. 401 ``bad_credentials`` otherwise. Long-lived tokens for
    integrations are made explicitly with ``POST /api/v1/tokens``. 429 ``login_throttled`` with
    ``Retry-After`` after too many failures for the account or the client address (``users.throttle``)."""
    address = request.client.host if request.client else None
    user = service.login(session, request.app.state.login_throttle, data.username, data.password, address)
    ttl = timedelta(hours=request.app.state.settings.login_token_ttl_hours)
    token, secret = service.issue_token(session, user, data.token_name, ttl=ttl)
    return {**token.model_dump(), "token": secret}


@router.get("/users/me", response_model=schemas.UserPublic)
def me(session: SessionDep, principal: CurrentPrincipal):
    return public_user(session, session.get(User, principal.user_id))


@router.get("/users", response_model=list[schemas.UserPublic])
def list_users(session: SessionDep, principal: CurrentPrincipal):
    """Admin only."""
    return [public_user(session, u) for u in service.list_users(session, principal)]


@router.post("/users", response_model=schemas.UserPublic, status_code=status.HTTP_201_CREATED)
def create_user(data: schemas.UserCreate, session: SessionDep, principal: CurrentPrincipal):
    """Admin only. 409 ``duplicate_username``; 422 ``unknown_unit`` / ``operator_without_units`` /
    ``not_a_province``. ``province_code``: the province the user acts in (issue 14; default: that of
    their units, or the only one); an admin kept in a province creates users of their own province."""
    principal.require_role(Role.admin)
    unit_ids = service.unit_ids_for_codes(session, data.unit_codes) if data.unit_codes else []
    province_id = service.unit_ids_for_codes(session, [data.province_code])[0] if data.province_code else None
    user = service.create_user(session, username=data.username, password=data.password, role=data.role,
                               full_name=data.full_name, email=data.email, unit_ids=unit_ids,
                               province_id=province_id, creator=principal)
    return public_user(session, user)


@router.post("/users/me/password", status_code=status.HTTP_204_NO_CONTENT)
def change_password(data: schemas.PasswordChange, session: SessionDep, principal: CurrentPrincipal):
    """The caller's new password (zxcvbn score ≥ 3, not the username). Ends every web session of the
    caller (sign in again). 401 ``bad_credentials`` for a wrong ``current_password``; 422 ``weak_password``."""
    service.change_password(session, principal.user_id, data.current_password, data.new_password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/tokens", response_model=list[schemas.TokenPublic], tags=["tokens"])
def list_tokens(session: SessionDep, principal: CurrentPrincipal):
    """The caller's own tokens (secrets are never shown again)."""
    return service.list_tokens(session, principal.user_id)


@router.post("/tokens", response_model=schemas.TokenIssued, status_code=status.HTTP_201_CREATED, tags=["tokens"])
def create_token(data: schemas.TokenCreate, session: SessionDep, principal: CurrentPrincipal):
    """A new bearer token for the caller; ``ttl_days`` (days) bounds its life."""
    user = session.get(User, principal.user_id)
    ttl = timedelta(days=data.ttl_days) if data.ttl_days else None
    token, secret = service.issue_token(session, user, data.name, ttl=ttl)
    return {**token.model_dump(), "token": secret}


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["tokens"])
def revoke_token(token_id: PathId, session: SessionDep, principal: CurrentPrincipal):
    """Revoke at once. 404 for a token that is not the caller's (admins may revoke any)."""
    service.revoke_token(session, principal, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
