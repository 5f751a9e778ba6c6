"""Import direction (STYLE): core ← users ← endpoints ← scheduling ← live, calendar, mail, calls ← web, and
calls ← stats ← web (usage statistics read the call records that call intake keeps).

Only the composers (``main``, ``all_models`` and ``cli``/``demo``, which start the app, and the Alembic
``migrations``) import every domain; no other core module imports a domain, and nothing imports a
composer. Within the domains beside scheduling, ``mail`` may use ``calendar`` (an e-mailed invite is
the calendar's invite); nothing else crosses sideways.

The web uses services, not another domain's internals: it imports no private name (``_x``), no
private module and none of :data:`INTERNAL` (the SQL of a domain, the shared steps of its use cases,
its background machinery).
"""

from __future__ import annotations

import ast
from pathlib import Path

import confsvc

ROOT = Path(confsvc.__file__).parent
DOMAINS = {"users", "endpoints", "scheduling", "live", "calendar", "mail", "calls", "stats", "web"}
#: package -> packages it must never import
FORBIDDEN = {
    "users": DOMAINS - {"users"},
    "endpoints": DOMAINS - {"users", "endpoints"},
    "scheduling": {"live", "calendar", "mail", "calls", "stats", "web"},
    "live": {"calendar", "mail", "calls", "stats", "web"},
    "calendar": {"live", "mail", "calls", "stats", "web"},
    "mail": {"live", "calls", "stats", "web"},
    "calls": {"live", "calendar", "mail", "stats", "web"},
    "stats": {"live", "calendar", "mail", "web"},
    "web": set(),
}
#: Core modules that wire the domains together: the only core modules that may import them.
COMPOSERS = {"main", "all_models", "cli", "demo"}
#: Per domain, the modules the web must not import: queries and SQL (``repository``, ``usage_queries``,
#: the summary's storage), steps shared by the domain's own use cases (``planning``, recording
#: ``live_events``), background machinery (probe, hub, fan-out, jobs). Everything else of a
#: domain (its service modules, models, schemas, pure rule modules) is public to the web.
INTERNAL = {
    "users": {"security", "throttle"},
    "endpoints": {"probe"},
    "scheduling": {"repository", "planning", "live_events"},
    "live": {"hub", "fanout", "channel", "snapshot", "revocation"},
    "calendar": {"feeds"},
    "mail": set(),
    "calls": set(),
    "stats": {"usage_queries", "summary", "summary_job"},
}


def _imports(path: Path) -> set[str]:
    return {name.split(".")[1] for name in _modules(path) if "." in name}


def _modules(path: Path) -> set[str]:
    """Every ``confsvc…`` module ``path`` imports (``from confsvc.a import b`` names ``confsvc.a.b`` when
    ``b`` is a module of package ``a``), at any depth of the file (lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "confsvc":
            package = ROOT.joinpath(*node.module.split(".")[1:])
            for alias in node.names:
                is_module = (package / f"{alias.name}.py").exists() or (package / alias.name).is_dir()
                found.add(f"{node.module}.{alias.name}" if is_module else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "confsvc"}
    return found


def _private_names(path: Path, own: str) -> list[str]:
    """Private names ``path`` takes from confsvc modules outside its package ``own``:
    ``from confsvc.x import _y`` and ``module._y`` on a module imported from there."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found, aliases = [], set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "confsvc"
                and node.module.split(".")[1:2] != [own]):
            found += [f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_") and a.name != "__version__"]
            aliases |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names
                        if a.name.split(".")[0] == "confsvc" and a.name.split(".")[1:2] != [own]}
    found += [f"{node.value.id}.{node.attr}" for node in ast.walk(tree)
              if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
              and node.attr.startswith("_") and not node.attr.startswith("__")]
    return found


def test_every_domain_package_is_covered() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"migrations", "locale"}
    assert packages == set(FORBIDDEN)
    assert set(INTERNAL) == DOMAINS - {"web"}


def test_every_internal_module_exists() -> None:
    missing = [f"{package}.{module}" for package, modules in INTERNAL.items() for module in modules
               if not (ROOT / package / f"{module}.py").exists()]
    assert missing == []


def test_import_direction() -> None:
    violations = []
    for package, forbidden in FORBIDDEN.items():
        for path in (ROOT / package).rglob("*.py"):
            bad = _imports(path) & forbidden
            if bad:
                violations.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert violations == []


def test_core_imports_no_domain_and_nothing_imports_a_composer() -> None:
    """``config``, ``db``, ``events``, ``clock``… are below every domain; ``main`` and the other composers
    are above everything, so no module but a composer imports one."""
    violations = []
    for path in ROOT.glob("*.py"):
        if path.stem not in COMPOSERS and (bad := _imports(path) & DOMAINS):
            violations.append(f"{path.name} imports {sorted(bad)}")
    for path in ROOT.rglob("*.py"):
        if path.parent == ROOT and path.stem in COMPOSERS or "migrations" in path.relative_to(ROOT).parts:
            continue
        bad = {m for m in _modules(path) if m.removeprefix("confsvc.") in COMPOSERS}
        if bad:
            violations.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert violations == []


def test_web_uses_services_not_another_domains_internals() -> None:
    violations = []
    for path in (ROOT / "web").rglob("*.py"):
        name = str(path.relative_to(ROOT))
        for module in sorted(_modules(path)):
            parts = module.split(".")
            if len(parts) >= 3 and parts[1] in INTERNAL and (parts[2] in INTERNAL[parts[1]] or parts[2].startswith("_")):
                violations.append(f"{name} imports internal {module}")
        violations += [f"{name} uses private {p}" for p in _private_names(path, "web")]
    assert violations == []


def test_web_rule_detector_sees_internals_and_private_names(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("from confsvc.scheduling import repository, reading\nfrom confsvc.stats.usage import _scope\n"
                     "from confsvc.scheduling import booking\nbooking._other(None)\n", encoding="utf-8")
    assert {"confsvc.scheduling.repository", "confsvc.scheduling.reading", "confsvc.stats.usage"} <= _modules(probe)
    assert _private_names(probe, "web") == ["confsvc.stats.usage._scope", "booking._other"]


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
