"""Each role's home on the dashboard (issue 13), shaped for templates from the dashboard's occurrence rows
(``web.meetings.occurrence_rows``) and the readiness boards (``web.readiness.board_view``):

- an operator (``Principal.marks_own_sites``): the next meetings of their own rooms, each site with its
  saved readiness and the "Đã sẵn sàng" / "Gặp sự cố" buttons, first on the page;
- the secretariat and admin (``Principal.oversees_readiness``): today's and tomorrow's meetings, those
  with a site reporting a problem first, then those whose technical check has begun with sites not
  ready, then by start;
- everyone else (a leader, ``viewer``): their next meetings and the entry to their calendar link.

Values only: who may mark what is ``users.principal``'s; the readiness rules are
``scheduling.readiness``'s.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from confsvc.config import Settings
from confsvc.users.principal import Principal
from confsvc.web import i18n
from confsvc.web import provinces as province_view
from confsvc.web import readiness as readiness_view

#: Meetings an operator's home lists (their rooms' next ones).
OPERATOR_MEETINGS = 5
#: Meetings a leader's home lists.
LEADER_MEETINGS = 8
#: A board's site list is open on the page up to this many sites; longer ones open on demand.
OPEN_SITES = 12


def home_kind(principal: Principal) -> str:
    """``"operator"``, ``"secretariat"`` or ``"leader"``: which home the dashboard shows."""
    if principal.marks_own_sites:
        return "operator"
    if principal.oversees_readiness:
        return "secretariat"
    return "leader"


Boards = dict[int, dict[str, Any]]


def board_of(boards: Boards, session: Session, settings: Settings, principal: Principal, row: dict[str, Any], *,
             now: datetime) -> dict[str, Any]:
    """``web.readiness.board_view`` of ``row``'s occurrence, computed once per request (``boards``:
    occurrence id → board, shared by the panels of one page)."""
    if row["occurrence_id"] not in boards:
        boards[row["occurrence_id"]] = readiness_view.board_view(session, settings, row["meeting_id"],
                                                                 row["occurrence_id"], principal, now=now)
    return boards[row["occurrence_id"]]


def _live(rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Rows not cancelled and not ended at ``now``, in start order."""
    return [r for r in rows if r["status"] != "cancelled" and r["end"] > now]


def operator_home(session: Session, settings: Settings, principal: Principal, rows: list[dict[str, Any]], *,
                  now: datetime, saved: tuple[int, int] | None = None,
                  boards: Boards | None = None) -> list[dict[str, Any]]:
    """The next :data:`OPERATOR_MEETINGS` occurrences (of ``rows``, not ended) with a site ``principal``
    may mark, each ``{"title", "when", "href", "meeting_id", "occurrence_id", "check_time", "deadline",
    "started", "sites": [site of board_view, markable only, plus "saved"]}``; ``saved`` is the
    ``(occurrence_id, room_id)`` just marked: that site's confirmation is shown from its stored state."""
    found = []
    boards = {} if boards is None else boards
    for row in _live(rows, now):
        board = board_of(boards, session, settings, principal, row, now=now)
        mine = [{**s, "saved": saved == (row["occurrence_id"], s["room_id"])}
                for s in board["sites"] if s["markable"]]
        if not mine:
            continue
        found.append({"title": row["title"], "when": row["when"], "href": row["href"],
                      "meeting_id": row["meeting_id"], "occurrence_id": row["occurrence_id"],
                      "check_time": row["check_time"], "deadline": board["deadline"],
                      "started": row["start"] <= now, "sites": mine})
        if len(found) == OPERATOR_MEETINGS:
            break
    return found


def secretariat_board(session: Session, settings: Settings, principal: Principal, rows: list[dict[str, Any]], *,
                      now: datetime, today: date, boards: Boards | None = None) -> list[dict[str, Any]]:
    """Today's and tomorrow's occurrences (local days) not ended, problems first.

    Each ``{"title", "when", "href", "day" ("today"/"tomorrow"), "ready", "total", "problems": [{"room_name",
    "note", "updated"}], "pending": [room names not ready], "checking" (the technical check has begun),
    "overdue", "deadline", "rank", "pending_provinces"}``: ``pending_provinces`` is None unless the sites span
    provinces, then ``[{"id", "name", "names"}]`` of the provinces with sites not checked;
    ``rank`` 0 = a site reports a problem, 1 = the check has begun
    with sites not ready, 2 = the rest; sorted by rank, then start."""
    tomorrow = today + timedelta(days=1)
    items = []
    boards = {} if boards is None else boards
    for row in _live(rows, now):
        if row["day"] not in (today, tomorrow):
            continue
        board = board_of(boards, session, settings, principal, row, now=now)
        problems = [{"room_name": s["room_name"], "note": s["note"], "updated": s["updated"]}
                    for s in board["sites"] if s["state"] == "problem"]
        pending = [s["room_name"] for s in board["sites"] if s["state"] == "not_checked"]
        by_province = by_provinces(session, board)
        checking = row["check_start"] <= now
        rank = 0 if problems else 1 if checking and pending else 2
        items.append({"title": row["title"], "when": row["when"], "href": row["href"],
                      "day": "today" if row["day"] == today else "tomorrow", "ready": board["ready"],
                      "total": board["total"], "problems": problems, "pending": pending, "checking": checking,
                      "overdue": board["overdue"], "deadline": board["deadline"], "rank": rank,
                      "start": row["start"], "open_pending": len(pending) <= OPEN_SITES,
                      # Spanning provinces (issue 14): the sites not checked by province, each group closed.
                      "pending_provinces": [{"id": g["id"], "name": g["name"],
                                             "names": [s["room_name"] for s in g["items"]
                                                       if s["state"] == "not_checked"]}
                                            for g in by_province if g["not_checked"]] if by_province else None})
    items.sort(key=lambda i: (i["rank"], i["start"]))
    return items


def by_provinces(session: Session, board: dict[str, Any]) -> list[dict[str, Any]] | None:
    """A board's sites by province (``web.provinces.group``, counts by state) when they span provinces,
    else None (computed once per board: kept in it)."""
    if "provinces" not in board:
        by_unit = province_view.of_units(session, {s["unit_id"] for s in board["sites"]})
        board["provinces"] = None
        if len({province for province, _name in by_unit.values()}) > 1:
            chair = next((s["unit_id"] for s in board["sites"] if s["is_chair"]), None)
            board["provinces"] = province_view.group(board["sites"], lambda s: by_unit.get(s["unit_id"]),
                                                     lambda s: s["state"],
                                                     first=by_unit[chair][0] if chair in by_unit else None)
    return board["provinces"]


def leader_home(rows: list[dict[str, Any]], *, now: datetime) -> list[dict[str, Any]]:
    """The next :data:`LEADER_MEETINGS` occurrences not ended (rows with ``day_label``)."""
    return [{**r, "day_label": i18n.fmt_day(r["day"])} for r in _live(rows, now)[:LEADER_MEETINGS]]

