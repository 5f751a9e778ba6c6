"""The live channel (SPEC "Live channel"): ``/ws/rooms/{id}``, ``/ws/units/{id}``, ``/ws/secretariat``,
join instructions at ``GET /api/v1/meetings/{id}/join-instructions``, and room display tokens at
``/api/v1/rooms/{id}/display-tokens``.

Connecting: the token comes in the first message ``{"type": "auth", "token": …}`` (within
:data:`AUTH_TIMEOUT_SECONDS`), or as ``Authorization: Bearer`` from a client that can set headers.
``?token=`` in the URL still works for the hardware displays and clients that use it, but is
deprecated: a URL is kept in browser histories, proxies' and servers' access logs (confsvc redacts it
in its own). ``?auth=message`` says the client authenticates with its first message even when a web
session cookie comes with the handshake (the room display page, ``static/display.js``: a display link
opened in a browser where someone is logged in stays the room's display, not that user's channel).
Without a token and without ``auth=message``, a browser page of confsvc itself is
authenticated by its web session cookie, but only when the handshake's ``Origin`` names the
``Host`` it was sent to (:func:`same_origin`): a cookie is sent by the browser on its own, so a page
of another site must not open a channel with it (cross-site WebSocket hijacking); a foreign origin's
cookie is ignored and the token is then required. A user's bearer token is scoped like the API (an operator
only their units and their sub-units; admin, secretariat and viewer everything, read-only); a room
display token opens only its own room's channel. Refusals accept, then close with
4401 (no or bad token), 4403 (outside the token's scope) or 4404 (no such room or unit); the reason
says why. Then the server sends, in order:

1. without ``since``, or when ``since`` is older than the oldest retained event (or unknown):
   ``{"id": <latest event id>, "type": "snapshot", "at", "data": snapshot.snapshot(...)}`` (a room
   channel's from ``hub.room_snapshots`` while the fan-out is healthy: read once for every display of the
   room and for all rooms asked at once, until an event of the room or time changes it; its ``id`` is
   the latest event id when it was read);
2. with ``since=<id>``: every event of the scope with a larger id, in id order, as sent live (an event
   of a meeting made confidential after it was recorded is shown as if recorded now: "Cuộc họp" to
   outsiders, ``visibility.mark_as_now``);
3. then live events of the scope as they commit.

Keep-alive: the server sends ``{"id", "type": "ping", "at", "data": {}}`` every ``ws_ping_seconds``,
in the SPEC envelope like every other message (issue 12 defect 9); its ``id`` is the id of the last
message this connection has sent (the snapshot's id, or the last event's), so a client that takes
every ``id`` as its resume point never skips anything. Any client message counts as a sign of life
(``{"type": "pong"}`` is the answer to a ping); a client silent for three intervals is closed with
4408. A client may send ``{"type": "ping"}`` and gets ``{"id", "type": "pong", "at", "data": {}}``.
Browsers cannot see WebSocket protocol pings (RFC 6455 §5.5.2), which is why the keep-alive is an
application message: a room display detects a silent server from it. (uvicorn's own protocol pings,
``--ws-ping-interval``, still run beside it.)
A client that falls ``ws_queue_size`` messages behind is closed with 4429 (never stalls the others).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI, Response, WebSocket, WebSocketDisconnect, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Send
from starlette.types import Scope as ASGIScope

from confsvc import events, periodic
from confsvc.clock import iso_utc, utc_now
from confsvc.db import MAX_ID, PathId, QueryId, SessionDep, make_session
from confsvc.endpoints.models import Room, Unit
from confsvc.errors import ConfsvcError, Forbidden, Invalid, NotFound, Unauthorized
from confsvc.live import display, snapshot
from confsvc.live.display import CachedDisplay, DisplayTokenCache
from confsvc.live.fanout import Fanout, make_fanout
from confsvc.live.hub import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND, CLOSE_UNAUTHORIZED, PONG, Connection, Hub, message_text
from confsvc.live.models import DisplayToken
from confsvc.live.snapshot import Scope
from confsvc.scheduling import participants, reading, visibility
from confsvc.scheduling.models import Meeting, Occurrence, OccurrenceStatus
from confsvc.text import natural
from confsvc.users import service as users
from confsvc.users.deps import SESSION_ID_KEY, SESSION_USER_KEY, CurrentPrincipal, bearer_token
from confsvc.users.models import ApiToken
from confsvc.users.principal import SEE_SECRETARIAT_CHANNEL, Principal
from confsvc.users.security import hash_token

log = logging.getLogger(__name__)
router = APIRouter()

AUTH_TIMEOUT_SECONDS = 10.0
#: A resume needing more messages than this gets a fresh snapshot instead.
REPLAY_MAX = 5000
#: Seconds between prunes of events older than ``event_retention_days``.
PRUNE_INTERVAL_SECONDS = 3600.0
#: Longest wait at start-up for the fan-out to subscribe and catch up before connections are accepted.
HEALTHY_WAIT_SECONDS = 3.0
_CLOSE_CODES = {401: CLOSE_UNAUTHORIZED, 403: CLOSE_FORBIDDEN, 404: CLOSE_NOT_FOUND}


# ---------------------------------------------------------------- lifespan

@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """Start this process's hub and fan-out (and the outbox pruning task) for the app's lifetime."""
    settings, engine = app.state.settings, app.state.engine
    snapshot.configure(dial_mode=settings.join_dial_mode)
    hub = Hub()
    await run_in_threadpool(_load_hub, engine, hub)
    fanout: Fanout = make_fanout(hub, redis_url=settings.redis_url, channel=settings.redis_channel, engine=engine)
    app.state.hub, app.state.fanout = hub, fanout
    await fanout.start()
    # Connections accepted before the fan-out has caught up would all take the database path (issue 14:
    # the first seconds after a restart are the reconnect storm).
    await fanout.wait_healthy(HEALTHY_WAIT_SECONDS)
    keepalive = asyncio.create_task(hub.keepalive(settings.ws_ping_seconds), name="confsvc-live-keepalive")
    try:
        async with periodic.running("event-prune", lambda: _prune(engine, settings.event_retention_days),
                                    PRUNE_INTERVAL_SECONDS):
            yield
    finally:
        keepalive.cancel()
        await asyncio.gather(keepalive, return_exceptions=True)
        await fanout.stop()


def _load_hub(engine: Engine, hub: Hub) -> None:
    """Start-up state of the connect path (issue 14): the latest event id, the last
    ``hub.recent_events`` events (``since`` resumes from memory) and every live display token."""
    with make_session(engine, write=False) as session:
        hub.max_id = events.latest_id(session)
        rows = list(reversed(session.exec(select(events.Event).order_by(col(events.Event.id).desc())
                                          .limit(hub.recent_events)).all()))
        if len(rows) < hub.recent_events:  # the whole outbox: resumes from just before its oldest event
            floor = (rows[0].id or 0) - 1 if rows else hub.max_id
        else:
            floor = rows[0].id or 0
            rows = rows[1:]
        hub.load_recent([events.to_published(e) for e in rows], floor)
        tokens = hub.display_tokens.load(session)
    log.info("live channel: %d display tokens cached, %d recent events after id %d", tokens, len(hub.recent), floor)


def _latest_id(engine: Engine) -> int:
    with make_session(engine, write=False) as session:
        return events.latest_id(session)


def _prune(engine: Engine, retention_days: int) -> None:
    """Delete outbox events older than ``retention_days`` (run by ``periodic``: a failure is logged and
    retried next time)."""
    with make_session(engine) as session:
        count = events.prune(session, utc_now() - timedelta(days=retention_days))
        session.commit()
    if count:
        log.info("pruned %d events older than %d days", count, retention_days)


def gauges(app: FastAPI) -> Iterator[tuple[str, str, dict[str, str], float]]:
    """``/metrics`` readings of this process's live channel (``Metrics.add_gauges``): open WebSockets
    by channel kind, and the outbox lag (newest committed event id − the last id the hub delivered)."""
    hub: Hub | None = getattr(app.state, "hub", None)
    counts = {"room": 0, "unit": 0, "secretariat": 0}
    for connection in list(hub.connections) if hub is not None else []:
        if connection.scope is not None:
            counts[connection.scope.kind] = counts.get(connection.scope.kind, 0) + 1
    for kind, count in counts.items():
        yield "confsvc_ws_connections", "Open live-channel WebSockets of this process.", {"kind": kind}, count
    if hub is not None:
        lag = max(0, _latest_id(app.state.engine) - hub.max_id)
        yield ("confsvc_outbox_lag_events", "Newest committed event id minus the last id this process's live "
               "hub delivered.", {}, lag)


# ---------------------------------------------------------------- authentication and scope

def _authenticate(session: Session, secret: str) -> tuple[Principal | DisplayToken, int | None]:
    """The display token, or the user's principal and the id of their API token.

    Raises Unauthorized for an unknown, revoked or expired token.
    """
    token = display.authenticate_display(session, secret)
    if token is not None:
        return token, None
    principal = users.principal_for(session, users.user_for_token(session, secret))
    api_token_id = session.exec(select(ApiToken.id).where(ApiToken.token_hash == hash_token(secret))).first()
    return principal, api_token_id


@dataclass
class _Opened:
    who: Principal | DisplayToken | CachedDisplay
    api_token_id: int | None
    scope: Scope
    #: None: not read yet (the caller answers a ``since`` resume from the hub's memory).
    initial: list[str] | None
    covered: set[int]
    upto: int


def _display_scope(display: CachedDisplay) -> Scope:
    """The channel a cached display token opens: its room, seen as the room's unit sees it."""
    return Scope("room", display.room_id, frozenset({display.room_id}),
                 visibility.Audience.of_units({display.unit_id}))


def _open(engine: Engine, secret: str | None, user_id: int | None, kind: str, object_id: int | None,
          since: int | None, session_secret: object = None, *, cached: CachedDisplay | None = None,
          tokens: DisplayTokenCache | None = None, read_resume: bool = True) -> _Opened | None:
    """Authenticate (``cached``, a display token from the process's cache; or ``secret``; or the web
    session's ``user_id`` with its server-side session id ``session_secret``), resolve the channel and
    read its first messages, in one read session: the connect path's one trip to the thread pool and the
    database (issue 14: a reconnect storm of thousands of displays). A display token read from the
    database is added to ``tokens``. With ``read_resume`` false a ``since`` resume is left to the caller
    (``initial`` None). ``None``: the web session's user is gone or deactivated, or the web session was
    ended (logout, password or role change; the caller then asks for a token).

    Raises: Unauthorized, Forbidden, NotFound (see :func:`_resolve_scope`).
    """
    with make_session(engine, write=False) as session:
        who: Principal | DisplayToken | CachedDisplay
        if cached is not None and kind == "room" and cached.room_id == object_id:
            who, api_token_id, scope = cached, None, _display_scope(cached)
        else:
            if secret is None:
                user = users.user_for_web_session(session, user_id, session_secret)
                if user is None:
                    return None
                who, api_token_id = users.principal_for(session, user), None
            else:
                who, api_token_id = _authenticate(session, secret)
            scope = _resolve_scope(session, who, kind, object_id)
            if isinstance(who, DisplayToken) and tokens is not None and scope.audience.unit_ids:
                tokens.remember_token(who, min(scope.audience.unit_ids))
        if not read_resume and (since is not None or scope.kind == "room"):
            return _Opened(who, api_token_id, scope, None, set(), since or 0)
        initial, covered, upto = _initial_in(session, scope, since)
        return _Opened(who, api_token_id, scope, initial, covered, upto)


def same_origin(websocket: WebSocket) -> bool:
    """True when the handshake's ``Origin`` (RFC 6454) has an http(s) scheme and the same host and
    port as its ``Host`` header (RFC 6455 §10.2: the server checks the origin)."""
    origin, host = websocket.headers.get("origin"), websocket.headers.get("host")
    if not origin or not host:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def _cookie_user_id(websocket: WebSocket) -> int | None:
    """The web session's user id, for a same-origin handshake only (else ``None``)."""
    session = websocket.scope.get("session") or {}
    user_id = session.get(SESSION_USER_KEY)
    return user_id if isinstance(user_id, int) and same_origin(websocket) else None


def _resolve_scope(session: Session, who: Principal | DisplayToken, kind: str, object_id: int | None) -> Scope:
    """The channel ``who`` may open. Raises NotFound, Forbidden (forbidden_scope / forbidden_role)."""
    if kind == "room":
        room = session.get(Room, object_id)
        if room is None:
            raise NotFound(f"room {object_id} not found", code="room_not_found")
        if isinstance(who, DisplayToken):
            if who.room_id != room.id:
                raise Forbidden(f"display token of room {who.room_id} cannot open room {room.id}",
                                code="forbidden_scope")
        else:
            who.require_unit(room.unit_id)
        audience = visibility.Audience.of_units({room.unit_id}) if isinstance(who, DisplayToken) \
            else visibility.Audience.of_principal(who)
        return Scope("room", room.id, frozenset({room.id}), audience)
    if isinstance(who, DisplayToken):
        raise Forbidden(f"display token of room {who.room_id} opens only /ws/rooms/{who.room_id}",
                        code="forbidden_scope")
    if kind == "unit":
        if session.get(Unit, object_id) is None:
            raise NotFound(f"unit {object_id} not found", code="unit_not_found")
        who.require_unit(object_id)
        units = users.expand_units(session, {object_id})
        rooms = frozenset(session.exec(select(Room.id).where(Room.unit_id.in_(units))).all())
        return Scope("unit", object_id, rooms, visibility.Audience.of_principal(who))
    who.require(SEE_SECRETARIAT_CHANNEL)
    if who.scope is None:
        return Scope("secretariat", None, None, visibility.Audience.of_principal(who))
    # A province's secretariat (issue 14): the events and rooms of its province only.
    rooms = frozenset(session.exec(select(Room.id).where(who.scope_filter(Room.unit_id))).all())
    return Scope("secretariat", who.province_id, rooms, visibility.Audience.of_principal(who))


def _initial(engine: Engine, scope: Scope, since: int | None) -> tuple[list[str], set[int], int]:
    """:func:`_initial_in` in a read session of its own."""
    with make_session(engine, write=False) as session:
        return _initial_in(session, scope, since)


def _initial_in(session: Session, scope: Scope, since: int | None) -> tuple[list[str], set[int], int]:
    """The messages to send first, the ids they cover, and the id up to which the client is current."""
    latest = events.latest_id(session)
    if since is not None and since <= latest:
        oldest = events.oldest_id(session)
        if since == latest or (oldest is not None and since >= oldest - 1):
            missed: list[events.Published] = []
            cursor = since
            while len(missed) <= REPLAY_MAX:
                page = events.replay(session, cursor)
                if not page:
                    now_confidential = _confidential_now(session, [p.message for p in missed])
                    texts = [message_text(visibility.visible_message(
                        scope.audience, visibility.mark_as_now(p.message, now_confidential))) for p in missed]
                    return texts, {p.message["id"] for p in missed}, since
                missed += [p for p in page if scope.matches(p)]
                cursor = page[-1].message["id"]
    now = utc_now()
    data = snapshot.snapshot(session, scope, now=now)
    return [message_text({"id": latest, "type": "snapshot", "at": iso_utc(now), "data": data})], set(), latest


def _titled_meetings(messages: list[dict[str, Any]]) -> set[int]:
    """Ids of the meetings that ``messages`` name with a title, unmarked (``visibility.mark_as_now``)."""
    return {m["data"]["meeting_id"] for m in messages
            if isinstance(m.get("data"), dict) and "title" in m["data"] and not m["data"].get("confidential")
            and isinstance(m["data"].get("meeting_id"), int)}


def _confidential_now(session: Session, messages: list[dict[str, Any]]) -> dict[int, set[int]]:
    """``{meeting id: participant unit ids}`` of the meetings that replayed ``messages`` name with a
    title and that are confidential now (perhaps made so after the event was recorded)."""
    return _confidential_meetings(session, _titled_meetings(messages))


def _read_confidential(engine: Engine, ids: set[int]) -> dict[int, set[int]]:
    """:func:`_confidential_meetings` in a read session of its own."""
    with make_session(engine, write=False) as session:
        return _confidential_meetings(session, ids)


def _confidential_meetings(session: Session, ids: set[int]) -> dict[int, set[int]]:
    """``{meeting id: participant unit ids}`` of those of ``ids`` that are confidential now: the units of
    the meeting's own chair room and participants and of every occurrence's (a few queries per such
    meeting)."""
    if not ids:
        return {}
    found: dict[int, set[int]] = {}
    for meeting in session.exec(select(Meeting).where(col(Meeting.id).in_(sorted(ids)),
                                                      col(Meeting.confidential))).all():
        rooms = set(participants.of_meeting(session, meeting).room_ids)
        occurrences = session.exec(select(Occurrence).where(col(Occurrence.meeting_id) == meeting.id)).all()
        for taking_part in participants.of_occurrences(session, meeting, occurrences).values():
            rooms.update(taking_part.room_ids)
        found[int(meeting.id or 0)] = set(session.exec(select(Room.unit_id).where(col(Room.id).in_(sorted(rooms)))).all())
    return found


#: Meetings whose confidentiality the hub remembers at most (``Hub.confidential_now``) before forgetting all.
CONFIDENTIAL_CACHE_MAX = 10_000


async def _resume_from_memory(hub: Hub, engine: Engine, scope: Scope,
                              since: int) -> tuple[list[str], set[int], int] | None:
    """A ``since`` resume from the hub's recent events (:meth:`Hub.recent_since`): exactly what
    :func:`_initial_in` would read from the outbox, without a query per connection. Whether a titled
    meeting is confidential now is read once per meeting and shared (``Hub.confidential_now``,
    forgotten when an event names the meeting). None: the window does not reach back to ``since``, or
    more than :data:`REPLAY_MAX` messages are missed (a snapshot is due)."""
    if scope.kind == "room" and scope.id is not None:
        window = hub.recent_for_room(since, scope.id)
    else:
        window = hub.recent_since(since)
    if window is None:
        return None
    missed = [p for p in window if scope.matches(p)]
    if len(missed) > REPLAY_MAX:
        return None
    messages = [p.message for p in missed]
    titled = _titled_meetings(messages)
    unknown = titled - hub.confidential_now.keys()
    known = {m: hub.confidential_now[m] for m in titled - unknown}
    if unknown:
        # One read per meeting however many displays resume at once: later ones await the first's.
        reads = hub.confidential_reads
        to_read = {m for m in unknown if m not in reads}
        if to_read:
            read = asyncio.ensure_future(_read_confidential_shared(hub, engine, to_read))
            for m in to_read:
                reads[m] = read
            read.add_done_callback(lambda done: [reads.pop(m, None) for m in to_read if reads.get(m) is done])
        for task in {reads[m] for m in unknown if m in reads}:
            known.update(await asyncio.shield(task))
        known.update({m: hub.confidential_now[m] for m in unknown - known.keys() if m in hub.confidential_now})
    now_confidential = {m: units for m, units in known.items() if units is not None}
    texts = []
    for message in messages:
        shown = visibility.visible_message(scope.audience, visibility.mark_as_now(message, now_confidential))
        texts.append(hub.text_of(message) if shown is message else message_text(shown))
    return texts, {m["id"] for m in messages}, since


async def _read_confidential_shared(hub: Hub, engine: Engine, ids: set[int]) -> dict[int, set[int] | None]:
    """``{meeting id: participant unit ids, or None when not confidential}`` for ``ids``, read once and
    kept in ``hub.confidential_now`` unless an event was delivered meanwhile."""
    generation = hub.generation
    found = await run_in_threadpool(_read_confidential, engine, ids)
    read: dict[int, set[int] | None] = {m: found.get(m) for m in ids}
    if hub.generation == generation:  # no event since the read: the answer may be shared
        if len(hub.confidential_now) > CONFIDENTIAL_CACHE_MAX:
            hub.confidential_now.clear()
        hub.confidential_now.update(read)
    return read


async def _initial_for(hub: Hub, fanout: Fanout, engine: Engine, scope: Scope,
                       since: int | None) -> tuple[list[str], set[int], int]:
    """The first messages of a channel: from the hub's memory when it can answer (healthy fan-out: a
    ``since`` resume from its recent events, a room channel's snapshot from ``hub.room_snapshots``),
    else from the outbox (:func:`_initial`)."""
    if not fanout.healthy:  # events may be missed meanwhile: nothing kept is trusted again
        hub.room_snapshots.forget_all()
    elif since is not None:
        found = await _resume_from_memory(hub, engine, scope, since)
        if found is not None:
            return found
    elif scope.kind == "room":
        kept = await hub.room_snapshots.get(scope, functools.partial(_read_room_snapshots, engine))
        now = iso_utc(utc_now())
        # The kept data with the moment it is sent, as a fresh read gives it.
        return [message_text({"id": kept.latest_id, "type": "snapshot", "at": now, "data": {**kept.data, "now": now}})], \
            set(), kept.latest_id
    return await run_in_threadpool(_initial, engine, scope, since)


def _read_room_snapshots(engine: Engine, scopes: list[Scope], now: datetime) -> tuple[int, dict[Scope, dict[str, Any]]]:
    """The latest event id and the snapshots of room channels ``scopes`` at ``now`` (UTC), in one read
    session (``room_snapshots.Reader``)."""
    with make_session(engine, write=False) as session:
        return events.latest_id(session), snapshot.room_snapshots(session, scopes, now=now)




def _reason(text: str) -> str:
    """A close reason within RFC 6455 §5.5's 123 bytes of UTF-8, cut between characters."""
    raw = text.encode("utf-8")[:123]
    return raw.decode("utf-8", errors="ignore")


# ---------------------------------------------------------------- WebSocket endpoints

async def _first_message_token(websocket: WebSocket) -> str:
    try:
        message = await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_SECONDS)
        body = json.loads(message)
    except (TimeoutError, ValueError, KeyError):
        raise Unauthorized("send ?token= or a first message {\"type\": \"auth\", \"token\": …}",
                           code="not_authenticated") from None
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise Unauthorized("the first message carries no token", code="not_authenticated")
    return token


def _since(websocket: WebSocket) -> int | None:
    raw = websocket.query_params.get("since")
    if raw is None or raw == "":
        return None
    since = natural(raw)  # at most 2**63 - 1, an event id's range
    if since is None:
        raise Invalid("since must be a non-negative event id", code="invalid_since")
    return since


async def _serve(websocket: WebSocket, kind: str, object_id: int | None) -> None:
    app = websocket.app
    settings, engine, hub, fanout = app.state.settings, app.state.engine, app.state.hub, app.state.fanout
    await websocket.accept()
    connection: Connection | None = None
    try:
        since = _since(websocket)
        # A client that can set headers sends ``Authorization: Bearer``, a browser its first message (no
        # secret in the URL or the logs); ``?token=`` is the deprecated form, kept for existing displays.
        secret = websocket.query_params.get("token") or bearer_token(websocket.headers.get("authorization"))
        by_message = websocket.query_params.get("auth") == "message"
        user_id = None if secret or by_message else _cookie_user_id(websocket)
        sid = (websocket.scope.get("session") or {}).get(SESSION_ID_KEY)
        if user_id is None:
            secret = secret or await _first_message_token(websocket)
        # Registered before the first messages are read, so nothing committed meanwhile is missed.
        connection = Connection(None, settings.ws_queue_size, heard_at=asyncio.get_running_loop().time())
        hub.register(connection)
        # Issue 14: a display token from the cache and a resume from the hub's recent events need no
        # database at all; only while the fan-out is healthy (else a revocation or an event may be missed).
        trusted = fanout.healthy
        cached = hub.display_tokens.lookup(secret) if secret and trusted else None
        if cached is not None and kind == "room" and cached.room_id == object_id:
            opened = _Opened(cached, None, _display_scope(cached), None, set(), since or 0)
        else:
            opened = await run_in_threadpool(_open, engine, secret, user_id, kind, object_id, since, sid,
                                              tokens=hub.display_tokens, read_resume=not trusted)
            if opened is None:  # the web session's user is gone: a token may still open the channel
                secret = await _first_message_token(websocket)
                opened = await run_in_threadpool(_open, engine, secret, None, kind, object_id, since,
                                                  tokens=hub.display_tokens, read_resume=not trusted)
        assert opened is not None
        if isinstance(opened.who, (DisplayToken, CachedDisplay)):
            connection.display_token_id = opened.who.id
            if hub.display_tokens.is_revoked(opened.who.id):  # revoked while it was being opened
                raise Unauthorized("invalid display token", code="invalid_token")
        if opened.initial is None:
            opened.initial, opened.covered, opened.upto = await _initial_for(hub, fanout, engine, opened.scope,
                                                                             since)
    except WebSocketDisconnect:
        if connection is not None:
            hub.unregister(connection)
        return
    except ConfsvcError as exc:
        if connection is not None:
            hub.unregister(connection)
        await websocket.close(code=_CLOSE_CODES.get(exc.status_code, 4400), reason=_reason(f"{exc.code}: {exc.detail}"))
        return
    if isinstance(opened.who, Principal):
        connection.user_id, connection.api_token_id = opened.who.user_id, opened.api_token_id
        if user_id is not None and isinstance(sid, str) and opened.api_token_id is None:  # opened by the cookie
            connection.web_session = hash_token(sid)
    hub.opened(connection, opened.scope)
    # Only ids and the scope stay for the connection's life: not the snapshot text, nor ORM objects.
    initial, covered, upto = opened.initial, opened.covered, opened.upto
    del opened
    try:
        initial.reverse()
        while initial:  # each text released once sent
            await websocket.send_text(initial.pop())
        await _pump(websocket, hub, fanout, engine, connection, covered, upto, settings.ws_ping_seconds)
    except WebSocketDisconnect:
        pass
    finally:
        hub.unregister(connection)


async def _pump(websocket: WebSocket, hub: Hub, fanout: Fanout, engine: Engine, connection: Connection,
                covered: set[int], upto: int, ping_seconds: float) -> None:
    """Send queued messages (events, and the hub's keep-alives), read client messages, until either side
    ends or the hub drops the connection (which cancels the sender). Two tasks per connection.

    A connection a replay left ``behind`` catches up, once its queue is sent, like a resume with
    ``since`` = the last id it sent (the missed messages, or a fresh snapshot when too many).
    """
    loop = asyncio.get_running_loop()

    async def receive() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            connection.heard_at = loop.time()
            try:
                body = json.loads(message.get("text") or "null")
            except ValueError:
                continue
            if isinstance(body, dict) and body.get("type") == "ping":
                connection.offer(None, PONG)

    last = max(upto, max(covered, default=0))

    async def send() -> None:
        nonlocal last, covered, upto
        # One plain await per message: no task or timer per message, which is what a fan-out to
        # thousands of room displays pays for (bench/fanout.py).
        while not connection.dropped.is_set():
            if connection.behind and connection.queue.empty():
                connection.behind = False  # first: what commits during the read is queued (and deduplicated)
                assert connection.scope is not None
                texts, covered, upto = await _initial_for(hub, fanout, engine, connection.scope, last)
                for text in texts:
                    await websocket.send_text(text)
                last = max(upto, max(covered, default=0))
                continue
            event_id, text = await connection.queue.get()
            if event_id is None:
                # Control messages get the envelope when sent, with the id the client is current to.
                text = message_text({"id": last, "type": text, "at": iso_utc(utc_now()), "data": {}})
            elif event_id <= upto or event_id in covered:
                continue
            else:
                last = max(last, event_id)
            await websocket.send_text(text)

    sender = asyncio.create_task(send())
    tasks = [asyncio.create_task(receive()), sender]
    connection.sender = sender
    if connection.dropped.is_set():
        sender.cancel()
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        connection.sender = None
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    if connection.dropped.is_set():
        # The close frame waits behind what the client has not read yet; one it never reads is
        # given up after three ping intervals, like a silent client.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(websocket.close(code=connection.close_code, reason=_reason(connection.close_reason)),
                                   3 * ping_seconds)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, (WebSocketDisconnect, asyncio.CancelledError)):
            log.debug("live connection ended: %r", result)


class _Channel:
    """The ASGI app of one kind of channel (``kind`` of :func:`_serve`; ``param``: the path parameter
    naming its room or unit, None for the secretariat's). A plain ASGI app rather than a FastAPI route:
    a channel takes no dependencies, and each framework layer is paid by every one of ~4,000 displays
    when they reconnect at once (issue 14). An id that is not a positive number of at most
    ``MAX_ID`` names nothing: the channel is accepted and closed with 4404 like an unknown room."""

    def __init__(self, kind: str, param: str | None) -> None:
        self.kind, self.param = kind, param

    async def __call__(self, scope: ASGIScope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive=receive, send=send)
        object_id = None
        if self.param is not None:
            raw = scope["path_params"][self.param]
            object_id = natural(raw, low=1, high=MAX_ID)
            if object_id is None:
                await websocket.accept()
                await websocket.close(code=CLOSE_NOT_FOUND, reason=_reason(f"{self.kind}_not_found: {self.kind} "
                                                                           f"{raw} not found"))
                return
        await _serve(websocket, self.kind, object_id)


#: The channels (SPEC "Live channel"), served by ``main.LiveChannels`` ahead of the HTTP middlewares:
#: ``/ws/rooms/{id}`` one room's channel (màn hình điểm cầu), display or user token;
#: ``/ws/units/{id}`` a unit's channel, its rooms' and every sub-unit's rooms' events, user token;
#: ``/ws/secretariat`` every event (Văn phòng UBND tỉnh): admin, secretariat, viewer.
ws_routes = [
    WebSocketRoute("/ws/rooms/{room_id}", _Channel("room", "room_id"), name="room_channel"),
    WebSocketRoute("/ws/units/{unit_id}", _Channel("unit", "unit_id"), name="unit_channel"),
    WebSocketRoute("/ws/secretariat", _Channel("secretariat", None), name="secretariat_channel"),
]


# ---------------------------------------------------------------- HTTP: join instructions, display tokens

class JoinInstructionsPublic(BaseModel):
    """``items``: one per participating room, chair room included (``join.instructions`` shape)."""

    meeting_id: int
    occurrence_id: int | None
    items: list[dict[str, Any]]


@router.get("/api/v1/meetings/{meeting_id}/join-instructions", response_model=JoinInstructionsPublic,
            tags=["meetings"])
def join_instructions(meeting_id: PathId, session: SessionDep, principal: CurrentPrincipal,
                      occurrence_id: QueryId = None):
    """Hướng dẫn kết nối per room for ``occurrence_id``, default the next one still to end
    (else the last). 404 unknown meeting/occurrence, 403 when none of an operator's units is involved.
    A confidential meeting outside the caller's view: "Cuộc họp", no dial strings or PIN."""
    meeting = reading.get_meeting(session, principal, meeting_id)
    if occurrence_id is not None:
        occ = reading.get_occurrence(session, meeting, occurrence_id)
    else:
        rows = session.exec(select(Occurrence).where(Occurrence.meeting_id == meeting.id,
                                                     Occurrence.status == OccurrenceStatus.scheduled)
                            .order_by(Occurrence.start, Occurrence.id)).all()
        now = utc_now()
        occ = next((o for o in rows if o.end > now), rows[-1] if rows else None)
    items = snapshot.join_for_occurrence(session, meeting, occ) if occ is not None else []
    if occ is not None and meeting.confidential and not visibility.sees_details(
            visibility.Audience.of_principal(principal), confidential=True,
            participant_unit_ids=snapshot.participant_units(session, meeting, occ)):
        items = [visibility.redact_join(item) for item in items]
    return {"meeting_id": meeting.id, "occurrence_id": occ.id if occ else None, "items": items}


class DisplayTokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(max_length=100)] = ""


class DisplayTokenPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    room_id: int
    name: str
    prefix: str
    created_at: Any
    revoked_at: Any = None


class DisplayTokenIssued(DisplayTokenPublic):
    """``token`` is shown once; ``ws_path`` is the channel it opens."""

    token: str
    ws_path: str


@router.post("/api/v1/rooms/{room_id}/display-tokens", response_model=DisplayTokenIssued,
             status_code=status.HTTP_201_CREATED, tags=["rooms"])
def create_display_token(room_id: PathId, session: SessionDep, principal: CurrentPrincipal,
                         data: DisplayTokenCreate | None = None):
    """A room display token (admin, secretariat). 201 with the secret once; 404 unknown room."""
    token, secret = display.create_display_token(session, principal, room_id, name=data.name if data else "")
    return {**token.model_dump(), "token": secret, "ws_path": f"/ws/rooms/{room_id}?token={secret}"}


@router.get("/api/v1/rooms/{room_id}/display-tokens", response_model=list[DisplayTokenPublic], tags=["rooms"])
def list_display_tokens(room_id: PathId, session: SessionDep, principal: CurrentPrincipal):
    """The room's display tokens, revoked ones included (secrets are never shown again)."""
    return display.list_display_tokens(session, principal, room_id)


@router.delete("/api/v1/rooms/{room_id}/display-tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT,
               tags=["rooms"])
def revoke_display_token(room_id: PathId, token_id: PathId, session: SessionDep, principal: CurrentPrincipal):
    """Revoke at once: new connections with it are refused (4401) and open ones are closed with 4401."""
    display.revoke_display_token(session, principal, room_id, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
