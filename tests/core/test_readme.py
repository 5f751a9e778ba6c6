"""README and code stay in step: every setting is documented, the two commands exist."""

from __future__ import annotations

from pathlib import Path

from confsvc.config import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme() -> None:
    missing = [f"CONFSVC_{name.upper()}" for name in Settings.model_fields if f"`CONFSVC_{name.upper()}`" not in README]
    assert missing == []


def test_the_two_commands_exist_and_ci_runs_the_test_command() -> None:
    assert "./scripts/demo" in README and "./scripts/test" in README
    assert (ROOT / "scripts" / "demo").stat().st_mode & 0o111
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
