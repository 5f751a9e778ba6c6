"""Import direction (STYLE): core ← users ← endpoints ← scheduling ← live, calendar, mail, stats ← web.

Only ``main`` (and ``cli``/``demo``, which start the app) import every domain. Within the
domains beside scheduling, ``mail`` may use ``calendar`` (an e-mailed invite is the calendar's
invite); nothing else crosses sideways.
"""

from __future__ import annotations

import ast
from pathlib import Path

import confsvc

ROOT = Path(confsvc.__file__).parent
DOMAINS = {"users", "endpoints", "scheduling", "live", "calendar", "mail", "stats", "web"}
#: package -> packages it must never import
FORBIDDEN = {
    "users": DOMAINS - {"users"},
    "endpoints": DOMAINS - {"users", "endpoints"},
    "scheduling": {"live", "calendar", "mail", "stats", "web"},
    "live": {"calendar", "mail", "stats", "web"},
    "calendar": {"live", "mail", "stats", "web"},
    "mail": {"live", "stats", "web"},
    "stats": {"live", "calendar", "mail", "web"},
    "web": set(),
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("confsvc."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("confsvc.")}
    return found


def test_every_domain_package_is_covered() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"migrations", "locale"}
    assert packages == set(FORBIDDEN)


def test_import_direction() -> None:
    violations = []
    for package, forbidden in FORBIDDEN.items():
        for path in (ROOT / package).rglob("*.py"):
            bad = _imports(path) & forbidden
            if bad:
                violations.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert violations == []
