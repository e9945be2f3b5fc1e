"""Services meet only on topics: no service imports another, and ``libs`` imports none.

Read from the source (``ast``), so an import inside a function counts too. What services share
lives in ``libs`` (the read model's key names in ``libs/read_model``).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())


def _imports(path: Path) -> set[str]:
    """Every name ``path`` imports, in full (``from a.b import c`` gives ``a.b.c``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _service_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "services" else None


def _crossings(service: str) -> set[tuple[str, str]]:
    crossings = set()
    for path in (ROOT / "services" / service).rglob("*.py"):
        for module in _imports(path):
            other = _service_of(module)
            if other is not None and other != service and other in SERVICES:
                crossings.add((service, _module_only(module)))
    return crossings


def _module_only(module: str) -> str:
    """``services.wallet.read_model.account_key`` -> the module it lives in."""
    parts = module.split(".")
    while len(parts) > 2 and not _exists(parts):
        parts.pop()
    return ".".join(parts)


def _exists(parts: list[str]) -> bool:
    base = ROOT.joinpath(*parts)
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def test_no_service_imports_another():
    found = {crossing for service in SERVICES for crossing in _crossings(service)}
    assert found == set()


def test_libs_import_no_service():
    imported = {m for p in (ROOT / "libs").rglob("*.py") for m in _imports(p)}
    assert not {m for m in imported if m == "services" or m.startswith("services.")}


def test_the_walk_sees_an_import_inside_a_function(tmp_path: Path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from services.wallet import read_model\n")
    assert "services.wallet.read_model" in _imports(source)
