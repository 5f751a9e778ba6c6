"""Import direction (STYLE): core ← endpoints ← scheduling ← notify, stats, web; only main imports all."""

from __future__ import annotations

import ast
from pathlib import Path

import confsvc

ROOT = Path(confsvc.__file__).parent
#: package -> packages it must never import
FORBIDDEN = {
    "endpoints": {"scheduling", "notify", "stats", "web"},
    "users": {"endpoints", "scheduling", "notify", "stats", "web"},
    "scheduling": {"notify", "stats", "web"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("confsvc."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("confsvc.")}
    return found


def test_import_direction() -> None:
    violations = []
    for package, forbidden in FORBIDDEN.items():
        for path in (ROOT / package).rglob("*.py"):
            bad = _imports(path) & forbidden
            if bad:
                violations.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert violations == []
