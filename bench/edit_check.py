"""The edit screens' live check on the demo's Phú Thọ (issue 13). Not a test.

Seeds the demo (148 communes, the weekly briefing on every room with an endpoint in service) into a
fresh SQLite file, signs in as the secretariat through the web app (TestClient), and times, on the
briefing's last occurrence, ``POST …/edit/check`` in each scope ("this", "following": the split of
the series, "series") and the ``GET`` of the edit page, ``--repeat`` times each; prints p50 and max
in milliseconds. The check runs the save itself in ``events.dry_run`` and rolls it back.

    python bench/edit_check.py [--repeat N]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import select

from confsvc import demo
from confsvc.config import Settings
from confsvc.db import make_engine, make_session
from confsvc.main import create_app
from confsvc.migrate import upgrade
from confsvc.scheduling.models import Meeting, Occurrence
from confsvc.users import security
from confsvc.users.models import User

PASSWORD = "bench-password-1"


def _form(html: str) -> dict[str, object]:
    values: dict[str, object] = dict(re.findall(r'<input id="\w+" name="(\w+)" value="([^"]*)"', html))
    values["csrf"] = re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    for name, body in re.findall(r'<select id="\w+" name="(\w+)">(.*?)</select>', html, re.S):
        values[name] = re.search(r'<option value="([^"]*)" selected>', body).group(1)  # type: ignore[union-attr]
    values["participant_room_ids"] = re.findall(r'name="participant_room_ids" value="(\d+)" checked', html)
    values["repeat_byday"] = re.findall(r'name="repeat_byday" value="(\w\w)" checked', html)
    values["participants_shown"] = "1"
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        settings = Settings(database_url=url, secret_key="b" * 40, data_dir=folder)
        upgrade(url)
        engine = make_engine(url)
        with make_session(engine) as session:
            demo.seed(session, settings, now=datetime.now(UTC) - timedelta(days=1))
            for user in session.exec(select(User)).all():
                user.password_hash = security.hash_password(PASSWORD)
                session.add(user)
            briefing = session.exec(select(Meeting).where(Meeting.title == demo.BRIEFING_TITLE)).one()
            last = session.exec(select(Occurrence).where(Occurrence.meeting_id == briefing.id)
                                .order_by(Occurrence.recurrence_id.desc())).first()  # type: ignore[union-attr]
            assert last is not None
            session.commit()
            meeting_id, occurrence_id = briefing.id, last.id
        with TestClient(create_app(settings, engine=engine)) as client:
            login = client.get("/login")
            token = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
            signed = client.post("/login", data={"username": "vanphong", "password": PASSWORD, "csrf": token, "next": "/"},
                                 follow_redirects=False)
            assert signed.status_code == 303, signed.text[:200]
            url_edit = f"/meetings/{meeting_id}/occurrences/{occurrence_id}/edit"
            page = client.get(url_edit)
            values, headers = _form(page.text), {"X-CSRF-Token": str(_form(page.text)["csrf"])}
            cases = {
                "GET edit page": lambda: client.get(url_edit),
                **{f"check {scope}": (lambda scope=scope: client.post(
                    f"{url_edit}/check", data={**values, "scope": scope, "start_time": "14:00", "end_time": "16:00"},
                    headers=headers)) for scope in ("this", "following", "series")},
            }
            for name, run in cases.items():
                times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    response = run()
                    times.append((time.perf_counter() - start) * 1000)
                    assert response.status_code == 200, (name, response.status_code, response.text[:200])
                print(f"{name:18} p50 {statistics.median(times):7.1f} ms   max {max(times):7.1f} ms")


if __name__ == "__main__":
    main()
