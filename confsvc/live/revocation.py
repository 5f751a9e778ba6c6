"""Revoked access closes live channels, in every process (issue 16 defect 9).

:func:`install` (called by ``main.create_app``) watches every ORM transaction of the process: when
it revokes (or deletes) a room display token or a user's API token, disables or deletes a user, or
changes a user's role, province or units, one ``access.revoked`` event is recorded in the same transaction::

    {"user_ids": [...], "api_token_ids": [...], "display_token_ids": [...]}

(and ``"web_sessions": [...]``, the SHA-256 digests of the web sessions a logout or
``users.revoke_web_sessions`` deleted: the channels their pages opened).

It travels to every process through the fan-out like any event (in-process, Redis or PostgreSQL
NOTIFY), never reaches a client (``events.INTERNAL_TYPES``), and each process's hub closes the
connections it names with 4401 ``access_revoked`` (``live.hub``). A display or page whose access
merely changed reconnects and is scoped again; a revoked one is refused at reconnect (4401).

Whatever the code path that makes the change (API, web page, CLI), the hook sees it: it reads the
ORM's attribute history at flush, and records at commit. A rolled-back transaction records nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlmodel import Session

from confsvc import events
from confsvc.live.models import DisplayToken
from confsvc.users.models import ApiToken, User, UserUnit, WebSession

_STASH = "confsvc_revoked_access"
#: The keys every ``access.revoked`` event carries (``web_sessions`` only when a web session ended).
_KEYS = ("user_ids", "api_token_ids", "display_token_ids")


def _changed(obj: Any, *names: str) -> bool:
    attrs = sa.inspect(obj).attrs
    return any(getattr(attrs, name).history.has_changes() for name in names)


def _before_flush(session: Session, _flush_context: Any, _instances: Any) -> None:
    found: dict[str, set[int]] = {"user_ids": set(), "api_token_ids": set(), "display_token_ids": set()}
    for obj in session.dirty:
        if isinstance(obj, User) and _changed(obj, "active", "role", "province_id"):
            found["user_ids"].add(obj.id)
        elif isinstance(obj, ApiToken) and obj.revoked_at is not None and _changed(obj, "revoked_at"):
            found["api_token_ids"].add(obj.id)
        elif isinstance(obj, DisplayToken) and obj.revoked_at is not None and _changed(obj, "revoked_at"):
            found["display_token_ids"].add(obj.id)
    for obj in session.deleted:
        key = {User: "user_ids", ApiToken: "api_token_ids", DisplayToken: "display_token_ids"}.get(type(obj))
        if key is not None:
            found[key].add(obj.id)
        elif isinstance(obj, WebSession):  # logout, or the user's sessions ended: their pages' channels
            revoke(session, "web_sessions", [obj.token_hash])
    for obj in [*session.new, *session.deleted]:
        if isinstance(obj, UserUnit):  # an operator's units changed: their channels are scoped anew
            found["user_ids"].add(obj.user_id)
    if any(found.values()):
        for key, ids in found.items():
            revoke(session, key, [i for i in ids if i is not None])


def revoke(session: Session, key: str, ids: Iterable[int | str]) -> None:
    """Add ``ids`` under ``key`` (``user_ids``, ``api_token_ids``, ``display_token_ids``, or
    ``web_sessions``: SHA-256 digests of web session secrets) to the transaction's one ``access.revoked``
    event, recorded at commit."""
    stash = session.info.setdefault(_STASH, {key: set() for key in _KEYS})
    stash.setdefault(key, set()).update(ids)


def _before_commit(session: Session) -> None:
    if session.info.get(_STASH) is None and not session.dirty and not session.deleted and not session.new:
        return
    session.flush()  # changes not flushed yet pass through _before_flush first
    stash = session.info.pop(_STASH, None)
    if stash and any(stash.values()):
        events.record(session, "access.revoked", {key: sorted(ids) for key, ids in stash.items()})


def _forget(session: Session, *_: Any) -> None:
    session.info.pop(_STASH, None)


def install() -> None:
    """Watch every ORM session of the process (idempotent)."""
    for name, callback in (("before_flush", _before_flush), ("before_commit", _before_commit),
                           ("after_rollback", _forget)):
        if not sa_event.contains(Session, name, callback):
            # First in line: the event must be recorded before ``events`` sends the commit's NOTIFY.
            sa_event.listen(Session, name, callback, insert=True)
