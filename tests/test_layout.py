"""The layout's rules, read statically from every module's imports (``TYPE_CHECKING`` ones too).

- No import cycle among the package's modules, nor among the bench's.
- ``core`` (the domain) imports nothing above it: only the standard library, pydantic, anyio, its
  own modules, and the layers below it (``errors``, ``backend_errors``, ``config``, ``store``, and
  the pure wire types in ``backend.models`` and ``backend.admin_models``) — never ``mcp``,
  ``httpx``, the pool or the server.
- No module over 400 lines (the aim is ~300).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = "mcp_ollama"
CORE_MAY_IMPORT = {
    "mcp_ollama.errors",
    "mcp_ollama.backend_errors",
    "mcp_ollama.config",
    "mcp_ollama.store",
    "mcp_ollama.backend.models",
    "mcp_ollama.backend.admin_models",
}
CORE_THIRD_PARTY = {"anyio", "pydantic", "jsonschema"}
MAX_LINES = 400


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, is_package: bool) -> set[str]:
    """Every module ``path`` imports, absolute, wherever the import statement stands."""
    found: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from . import x`
    return found


def _graph(base: Path, files: list[Path]) -> dict[str, set[str]]:
    modules = {_module_name(f, base): f for f in files}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = _imports(path, name, path.name == "__init__.py")
        graph[name] = {m for m in imported if m in modules and m != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component larger than a module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _package_graph() -> dict[str, set[str]]:
    graph = _graph(SRC, sorted((SRC / PACKAGE).rglob("*.py")))
    # A package's __init__ re-exporting its own modules is no cycle of substance: the modules
    # importing ``from . import x`` reach x, not the __init__; leave __init__ -> child edges out.
    return {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}


def test_the_package_has_no_import_cycle() -> None:
    assert _cycles(_package_graph()) == []


def test_the_bench_has_no_import_cycle() -> None:
    bench = ROOT / "bench"
    graph = _graph(ROOT, sorted(bench.glob("*.py")))
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_core_depends_on_nothing_above_it() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    offenders: dict[str, list[str]] = {}
    for path in sorted((SRC / PACKAGE / "core").rglob("*.py")):
        name = _module_name(path, SRC)
        for module in _imports(path, name, path.name == "__init__.py"):
            top = module.split(".")[0]
            if top in stdlib or top in CORE_THIRD_PARTY:
                continue
            if module.startswith("mcp_ollama.core") or any(
                module == allowed or module.startswith(allowed + ".") for allowed in CORE_MAY_IMPORT
            ):
                continue
            if module.rpartition(".")[0] in CORE_MAY_IMPORT or module.rpartition(".")[0] == "mcp_ollama.core":
                continue  # `from ..store import ChatStore` names a member of an allowed module
            offenders.setdefault(name, []).append(module)
    assert offenders == {}


def test_core_imports_neither_mcp_nor_httpx_when_run() -> None:
    modules = sorted(_module_name(p, SRC) for p in (SRC / PACKAGE / "core").rglob("*.py"))
    probe = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('mcp', 'mcp_types', 'httpx')))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_no_module_is_over_400_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): lines
        for folder in (SRC / PACKAGE, ROOT / "bench", ROOT / "tests" / "fake_ollama")
        for path in folder.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}
