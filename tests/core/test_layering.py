"""The core is pure torch/numpy/pandas: importing every core module never imports dagster."""

import pkgutil
import subprocess
import sys

import gan_assets.core


def test_core_never_imports_dagster():
    modules = [m.name for m in pkgutil.walk_packages(gan_assets.core.__path__, "gan_assets.core.")]
    assert len(modules) > 10
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules) + \
        "print(sorted(n for n in sys.modules if n == 'dagster' or n.startswith('dagster.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
