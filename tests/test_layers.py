"""The layering of docs/ARCHITECTURE.md, checked on the source: the interfaces
(cli/, web/) share rules through ops.py, never through each other, and no
module reaches into another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "queuectl"


def _modules(package: str) -> list[Path]:
    return sorted((SRC / package).rglob("*.py")) if package else [SRC / "ops.py"]


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of each import statement in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.module, [a.name for a in node.names]))
    return out


def test_web_imports_nothing_from_cli_and_cli_nothing_from_web_app():
    for path in _modules("web"):
        for module, _ in _imports(path):
            assert not module.startswith("queuectl.cli"), (path.name, module)
    for path in _modules("cli"):
        for module, _ in _imports(path):
            assert module not in ("queuectl.web.views", "queuectl.web.context"), path.name


def test_no_private_name_of_another_queuectl_module_is_used():
    for path in _modules("web") + _modules("cli") + _modules(""):
        tree = ast.parse(path.read_text())
        ours = set()                 # names bound to queuectl modules or their members
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("queuectl"):
                for a in node.names:
                    assert not a.name.startswith("_") or a.name == "__version__", \
                        (path.name, node.module, a.name)
                    ours.add(a.asname or a.name)
            elif isinstance(node, ast.Import):
                ours |= {a.asname or a.name for a in node.names
                         if a.name.startswith("queuectl")}
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id in ours and node.attr.startswith("_") and \
                    not node.attr.startswith("__"):
                raise AssertionError(f"{path.name}: {node.value.id}.{node.attr}")


def test_ops_imports_no_store_at_run_time():
    # enqueue imports ops: the store's modules are imported only where needed,
    # and typing not at all (see ops.py).
    top = [n for n in ast.parse((SRC / "ops.py").read_text()).body
           if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = [m for n in top for m in ([n.module] if isinstance(n, ast.ImportFrom)
                                        else [a.name for a in n.names])]
    assert all(not m.startswith(("queuectl.store", "typing")) for m in modules), modules
