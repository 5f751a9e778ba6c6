"""No import has a side effect: every listener and recorder is installed by ``main.install_hooks``
(called by ``create_app``, the CLI commands that write and the demo loader). Checked in a fresh
interpreter, since this test session installs them (tests/conftest.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROBE = """
import sqlalchemy as sa
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session

import confsvc.all_models, confsvc.cli, confsvc.demo, confsvc.main
from confsvc import events
from confsvc.live.snapshot import record_join_instructions
from confsvc.stats import summary


def state():
    return [sa.event.contains(Session, "after_commit", events._after_commit),
            sa.event.contains(Session, "after_rollback", events._after_rollback),
            any(sa.event.contains(OrmSession, name, f) for name in ("after_flush", "do_orm_execute")
                for f in vars(summary).values() if callable(f)),
            record_join_instructions in events._recorders]


print(state())
{install}
print(state())
"""


def _run(install: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", PROBE.format(install=install)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2], check=True)
    return done.stdout.split("\n")[:2]


def test_importing_confsvc_installs_no_listener_and_create_app_installs_each_once() -> None:
    assert _run("confsvc.main.create_app(confsvc.main.Settings(secret_key='k' * 40)); confsvc.main.install_hooks()") \
        == ["[False, False, False, False]", "[True, True, False, True]"]


def test_installing_the_hooks_twice_installs_each_once() -> None:
    assert _run("confsvc.main.install_hooks(); confsvc.main.install_hooks()\n"
                "assert events._recorders.count(record_join_instructions) == 1") == [
        "[False, False, False, False]", "[True, True, False, True]"]
