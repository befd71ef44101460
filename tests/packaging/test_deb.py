"""The .deb built from a tiny fake bundle: control fields, layout, conffile, and what install,
remove and purge do to /etc and to profile data (real dpkg, into a temporary root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import deb
import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("dpkg-deb") is None or shutil.which("dpkg") is None,
    reason="dpkg/dpkg-deb not installed (not a Debian system)",
)

PROFILE = "home/alice/.local/share/DoctorAI"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("deb")
    bundle = base / "bundle"
    (bundle / "_internal").mkdir(parents=True)
    exe = bundle / "doctorai"
    exe.write_text('#!/bin/sh\necho "fake doctorai $*"\n')
    exe.chmod(0o755)
    (bundle / "_internal" / "libfake.so").write_bytes(b"\x7fELF" + b"\0" * 2048)
    return deb.build_deb(bundle, base / "out", version="9.8.7")


def _deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True, check=True).stdout


def test_control_fields(package: Path) -> None:
    assert package.name == "doctorai_9.8.7_amd64.deb"
    fields = {
        k: _deb("-f", str(package), k).strip() for k in ("Package", "Version", "Architecture")
    }
    assert fields == {"Package": "doctorai", "Version": "9.8.7", "Architecture": "amd64"}
    assert "libxcb-cursor0" in _deb("-f", str(package), "Depends")
    assert int(_deb("-f", str(package), "Installed-Size")) >= 2  # the 2 KiB fake library


def test_layout_and_modes(package: Path) -> None:
    listing = {
        line.split()[-1].lstrip("."): line.split()[0]
        for line in _deb("-c", str(package)).splitlines()
    }
    assert listing["/opt/doctorai/doctorai"] == "-rwxr-xr-x"
    assert listing["/usr/bin/doctorai"] == "-rwxr-xr-x"
    assert "/opt/doctorai/_internal/libfake.so" in listing
    assert "/usr/share/applications/doctorai.desktop" in listing
    assert "/usr/share/doc/doctorai/config.example.toml" in listing
    assert listing["/etc/doctorai/config.toml"] == "-rw-r--r--"
    owners = {line.split()[1] for line in _deb("-c", str(package)).splitlines()}
    assert owners == {"root/root"}


def test_conffile_and_scripts(package: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-e", str(package), str(tmp_path / "ctl")], check=True)
    assert (tmp_path / "ctl" / "conffiles").read_text().split() == ["/etc/doctorai/config.toml"]
    for script in ("postinst", "prerm", "postrm"):
        assert os.access(tmp_path / "ctl" / script, os.X_OK)


def test_wrapper_runs_the_bundle(package: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-x", str(package), str(tmp_path)], check=True)
    wrapper = (tmp_path / "usr/bin/doctorai").read_text()
    assert "exec /opt/doctorai/doctorai" in wrapper
    out = subprocess.run(
        [str(tmp_path / "opt/doctorai/doctorai"), "--selftest"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "fake doctorai --selftest"


def _dpkg(root: Path, *args: str, env: dict[str, str] | None = None) -> None:
    cmd = [
        "dpkg",
        f"--instdir={root}",
        f"--admindir={root}/var/lib/dpkg",
        "--log=/dev/null",
        "--force-script-chrootless",
        "--force-not-root",
        "--force-depends",
        *args,
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """An empty dpkg database and one user's profile holding an audit database."""
    r = tmp_path / "root"
    (r / "var/lib/dpkg/info").mkdir(parents=True)
    (r / "var/lib/dpkg/updates").mkdir()
    (r / "var/lib/dpkg/status").touch()
    (r / PROFILE).mkdir(parents=True)
    (r / PROFILE / "audit.db").write_bytes(b"encrypted audit trail")
    return r


def test_remove_keeps_config_and_profiles_purge_only_config(package: Path, root: Path) -> None:
    _dpkg(root, "-i", str(package))
    assert (root / "opt/doctorai/doctorai").is_file()
    conf = root / "etc/doctorai/config.toml"
    conf.write_text(conf.read_text() + '\nlocked = ["sync.server_url"]\n')  # IT's edit
    _dpkg(root, "-r", "doctorai")
    assert not (root / "opt/doctorai/doctorai").exists()
    assert 'locked = ["sync.server_url"]' in conf.read_text()  # conffile kept on remove
    assert (root / PROFILE / "audit.db").read_bytes() == b"encrypted audit trail"
    _dpkg(root, "--purge", "doctorai")
    assert not (root / "etc/doctorai").exists()
    assert (root / PROFILE / "audit.db").is_file()  # purge alone never deletes profiles


def test_purge_deletes_profiles_only_when_asked(package: Path, root: Path) -> None:
    _dpkg(root, "-i", str(package))
    _dpkg(root, "--purge", "doctorai", env={"DOCTORAI_PURGE_PROFILES": "yes"})
    assert not (root / PROFILE).exists()
    assert (root / "home/alice/.local/share").is_dir()  # only DoctorAI's folder went


def test_missing_bundle_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(deb.DebError, match="no 'doctorai' executable"):
        deb.build_deb(tmp_path / "nothing", tmp_path / "out", version="1.0.0")
