# The project's scripts take the Debian archive from this machine's apt configuration (both
# sources.list formats) and name no archive's host themselves.
import os
import re
import subprocess

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.fast

SCRIPT = os.path.join(REPO, "dev", "debian-mirror")


def mirror(etc, **env):
    return subprocess.run([SCRIPT], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "APT_ETC": str(etc), **env})


def test_the_archive_comes_from_a_deb822_sources_file(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "nodesource.sources").write_text(
        "Types: deb\nURIs: https://third.party.example/node\nSuites: nodistro\nComponents: main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n")
    out = mirror(tmp_path)
    assert out.returncode == 0 and out.stdout == "http://mirror.example/debian\n", out.stderr


def test_the_archive_comes_from_a_one_line_sources_list(tmp_path):
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/x.gpg] http://other.example/debian bookworm main contrib\n")
    assert mirror(tmp_path).stdout == "http://other.example/debian\n"


def test_no_debian_archive_is_a_clear_error(tmp_path):
    (tmp_path / "sources.list").write_text("deb https://packages.example/apt cloud-sdk main\n")
    out = mirror(tmp_path)
    assert out.returncode == 1 and "no Debian archive" in out.stderr and "DEBIAN_MIRROR" in out.stderr


def test_the_machines_own_configuration_gives_an_archive():
    out = mirror("/etc/apt")
    assert out.returncode == 0 and out.stdout.startswith(("http://", "https://", "file:/")), out.stderr


def test_no_script_names_a_package_archives_host():
    scripts = [os.path.join(REPO, "dev", name) for name in os.listdir(os.path.join(REPO, "dev"))]
    scripts += [os.path.join(REPO, "tests", "site", name) for name in ("build", "start", "stop")]
    for path in scripts:
        text = open(path).read()
        hosts = re.findall(r"https?://([A-Za-z0-9.-]+)", text)
        assert [h for h in hosts if "debian" in h or "ubuntu" in h] == [], path
