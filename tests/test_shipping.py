# The worker shim travels as one zipapp holding the worker package (its runtimes and transfer
# modes too) and nothing else of scailfin_exec, named after its content.
import subprocess
import zipfile

import pytest

from scailfin_exec.shipping import build_shim, shim_command, shim_sources

pytestmark = pytest.mark.fast


def test_the_zipapp_holds_the_whole_worker_package_and_nothing_else(tmp_path):
    path = build_shim(tmp_path)
    names = set(zipfile.ZipFile(path).namelist())
    assert {"__main__.py", "scailfin_exec/worker/shim.py", "scailfin_exec/worker/keeper.py",
            "scailfin_exec/worker/runtimes/charliecloud.py", "scailfin_exec/worker/transfers/chirp.py"} <= names
    assert not [n for n in names if n.startswith("scailfin_exec/") and not n.startswith("scailfin_exec/worker/")
                and n != "scailfin_exec/__init__.py"]


def test_it_is_named_after_its_content_and_built_once(tmp_path):
    digest, _ = shim_sources()
    first = build_shim(tmp_path)
    assert first.endswith(f"scailfin-shim-{digest}.pyz") and build_shim(tmp_path) == first


def test_a_worker_runs_it_without_site_packages(tmp_path):
    out = subprocess.run(shim_command("/usr/bin/python3", build_shim(tmp_path), "--doctor"), capture_output=True,
                         text=True, env={"PATH": "/nonexistent", "HOME": str(tmp_path)})
    assert out.returncode == 1 and out.stdout.splitlines()[-1] == "usable runtimes: none"
