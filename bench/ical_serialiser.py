"""Benchmark: the feed's own iCalendar serialiser against ``icalendar`` on a real-size feed (issue 11).

Not a test. Builds ``bench/feeds.py``'s data (a unit feed of 1,000 VEVENTs: 850 single meetings and
50 weekly series with a moved and a cancelled occurrence) in a temporary SQLite file, loads the
feed's ``MeetingCal`` values once through ``calendar.feeds.feed`` (what a request hands the
serialiser), then times in-process, with nothing cached (``FEED_BLOCKS`` emptied before each run):

- *own*: ``feed_ical.feed`` — the hand-written VEVENT serialiser the feeds use;
- *icalendar*: ``ical.feed_reference`` — the same feed built from ``icalendar`` components;

and checks both give the same bytes. A feed is rendered like this whenever its ETag changes (any
booking in the deployment), so *own* vs *icalendar* is the cost of a cold feed's rendering.

    python bench/ical_serialiser.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=10, help="timed renders of each serialiser")
    args = parser.parse_args()

    from sqlmodel import select

    from bench.feeds import seed
    from confsvc.calendar import feeds, ical
    from confsvc.calendar.models import FeedToken
    from confsvc.config import Settings
    from confsvc.db import make_engine, make_session

    try:
        from confsvc.calendar import feed_ical as own
    except ImportError:  # before the serialiser had a module of its own (6c5b72a)
        own = ical

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.sqlite3"
        seed(url)
        settings = Settings(database_url=url, secret_key="b" * 40)
        engine = make_engine(url)
        captured: dict = {}
        real = own.feed

        def capture(name, meetings, *, refresh, all_day=()):
            captured.update(name=name, meetings=list(meetings), refresh=refresh)
            return real(name, captured["meetings"], refresh=refresh, all_day=all_day)

        own.feed = capture
        try:
            with make_session(engine, write=False) as session:
                token = session.exec(select(FeedToken)).one()
                feeds.feed(session, settings, token, base_url="http://127.0.0.1:8000")
        finally:
            own.feed = real
            engine.dispose()
    name, meetings, refresh = captured["name"], captured["meetings"], captured["refresh"]

    def timed(render) -> tuple[list[float], bytes]:
        times, body = [], b""
        for _ in range(args.repeats + 1):  # the first run warms zone and rule caches: not counted
            own.FEED_BLOCKS.clear()
            start = time.perf_counter()
            body = render()
            times.append((time.perf_counter() - start) * 1000)
        return times[1:], body

    own_ms, own_body = timed(lambda: own.feed(name, meetings, refresh=refresh))
    lib_ms, lib_body = timed(lambda: ical.feed_reference(name, meetings, refresh=refresh))
    assert own_body == lib_body, "the serialisers disagree"
    vevents = own_body.count(b"BEGIN:VEVENT")
    print(f"feed: {vevents} VEVENTs, {len(own_body):,} bytes, {len(meetings)} meetings; {args.repeats} renders each")
    for label, ms in (("own serialiser", own_ms), ("icalendar", lib_ms)):
        print(f"{label:15} median {statistics.median(ms):8.1f} ms  min {min(ms):8.1f} ms  "
              f"({statistics.median(ms) * 1000 / vevents:.0f} µs per VEVENT)")
    print(f"icalendar / own: {statistics.median(lib_ms) / statistics.median(own_ms):.1f}×")


if __name__ == "__main__":
    main()
