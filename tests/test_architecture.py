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


def _role_uses(source: str, name: str) -> list[str]:
    """Role comparisons, role tuples and ``require_role`` calls in ``source`` (``Role.x`` as a label key or
    a constructor argument is fine)."""

    def is_role(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Role") or (
            isinstance(node, ast.Attribute) and node.attr == "role")

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(
                is_role(n) or (isinstance(n, ast.Tuple | ast.List | ast.Set) and any(map(is_role, n.elts)))
                for n in [node.left, *node.comparators]):
            found.append(f"{name}:{node.lineno} compares roles")
        elif isinstance(node, ast.Tuple | ast.List | ast.Set) and node.elts and all(map(is_role, node.elts)):
            found.append(f"{name}:{node.lineno} lists roles")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "require_role":
            found.append(f"{name}:{node.lineno} calls require_role")
    return found


def test_no_role_comparison_outside_users() -> None:
    """Who may do what is a capability of ``users.principal.Principal``; no other module compares roles."""
    found = [use for path in ROOT.rglob("*.py") if "users" not in path.relative_to(ROOT).parts[:1]
             for use in _role_uses(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))]
    assert found == []


def test_role_check_detector_sees_a_role_tuple() -> None:
    source = ("WRITERS = (Role.admin, Role.secretariat)\nok = p.role in WRITERS\nif p.role is Role.viewer: pass\n"
              "p.require_role(Role.admin)\nLABELS = {Role.admin: 'x'}\n")
    assert [u.split(" ", 1)[1] for u in _role_uses(source, "probe")] == [
        "lists roles", "compares roles", "compares roles", "calls require_role"]
