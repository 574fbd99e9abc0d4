# dev/setup keeps one Python environment per checkout and dependency set; pruning removes the ones
# no checkout uses, never the one another checkout's .venv points at.
import os
import subprocess

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.fast


def env(cache, name, owner):
    path = cache / name
    (path / "bin").mkdir(parents=True)
    if owner is not None:
        (path / ".checkout").write_text(f"{owner}\n")
    return path


def test_pruning_keeps_every_environment_a_checkout_still_uses(tmp_path):
    cache, a, b, gone = tmp_path / "cache", tmp_path / "a", tmp_path / "b", tmp_path / "gone"
    a.mkdir()
    b.mkdir()
    a_now, a_before = env(cache, "venv-aaaa-new", a), env(cache, "venv-aaaa-old", a)
    b_now = env(cache, "venv-bbbb-deps", b)
    orphan, legacy = env(cache, "venv-cccc-deps", gone), env(cache, "venv-44717e0cb77f", None)
    os.symlink(a_now, a / ".venv")
    os.symlink(b_now, b / ".venv")
    out = subprocess.run([os.path.join(REPO, "dev", "prune-envs"), str(cache)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in cache.iterdir()) == ["venv-aaaa-new", "venv-bbbb-deps"]
    assert not a_before.exists() and not orphan.exists() and not legacy.exists()
    assert f"removing {a_before} (made for {a}, which uses another one now)" in out.stdout


def test_setup_names_an_environment_after_its_checkout_and_its_dependencies_not_their_paths():
    setup = open(os.path.join(REPO, "dev", "setup")).read()
    assert 'cat "$here/setup.cfg" "$here/pyproject.toml" | sha256sum' in setup  # contents, not paths
    assert "venv-$checkout_hash-$deps_hash" in setup and '"$here/dev/prune-envs" "$CACHE"' in setup
