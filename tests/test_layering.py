"""The house's one-way imports: import-linter's contracts (pyproject.toml), and what they cannot say alone.

The library (gan_assets/core) is pure torch/numpy/pandas: importing every core module never imports dagster; its
stage folders import only the folders below them; the schema imports no other project module; no import circle.
"""

import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import gan_assets.core

ROOT = Path(gan_assets.core.__file__).resolve().parents[2]


def test_every_import_contract_is_kept():
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    result = subprocess.run([lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_core_never_imports_dagster():
    modules = [m.name for m in pkgutil.walk_packages(gan_assets.core.__path__, "gan_assets.core.")]
    assert len(modules) > 10
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + \
        "print(sorted(n for n in sys.modules if n == 'dagster' or n.startswith('dagster.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def module_imports() -> dict[str, set[str]]:
    """Each gan_assets/pipelines module → the project modules it imports, at the top or inside a function
    (a deferred import is still a dependency); `if TYPE_CHECKING:` blocks never run, so they are not arrows."""
    import ast
    from pathlib import Path

    root = Path(gan_assets.core.__file__).resolve().parents[2]
    files = [*root.glob("gan_assets/**/*.py"), *root.glob("pipelines/**/*.py")]
    names = {f: ".".join(f.relative_to(root).with_suffix("").parts).removesuffix(".__init__") for f in files}
    known = set(names.values())
    graph: dict[str, set[str]] = {}
    for path, name in names.items():
        tree = ast.parse(path.read_text())
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        typing_only = {id(sub) for node in ast.walk(tree)
                       if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                       for sub in ast.walk(node)}
        for node in ast.walk(tree):
            for sub in ([] if id(node) in typing_only else [node]):
                if isinstance(sub, ast.Import):
                    targets |= {a.name for a in sub.names}
                elif isinstance(sub, ast.ImportFrom):
                    base = sub.module or ""
                    if sub.level:
                        base = ".".join(package.split(".")[: len(package.split(".")) - sub.level + 1] + ([base] if base else []))
                    targets |= {base} | {f"{base}.{a.name}" for a in sub.names}
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_import_cycles():
    graph = module_imports()
    assert len(graph) > 40
    # a package importing its own submodules (`metrics/__init__` → `metrics.base`) is not a cycle
    cyclic = [m for m in graph if m in {r for r in reachable(graph, m) if not r.startswith(f"{m}.")}]
    assert cyclic == []


def test_metrics_never_reach_the_training_loop():
    graph = module_imports()
    for module in [m for m in graph if m.startswith("gan_assets.core.evaluation.metrics")]:
        assert not reachable(graph, module) & {"gan_assets.core.training.loop", "gan_assets.core.training.run",
                                                "gan_assets.core.training.checkpoints"}, module
