"""Release signing round trip with a throw-away key; tampering and wrong keys are refused."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import release_signing as rs

VERIFY = Path(rs.__file__).resolve().parent / "verify"


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, list[Path]]:
    """A signed release folder: two artefacts, SHA256SUMS and their signatures."""
    secret, public = tmp_path / "release.pem", tmp_path / "release.pub"
    monkeypatch.setenv(rs.PASSPHRASE_ENV, "correct horse")
    assert rs.main(["keygen", "--secret", str(secret), "--public", str(public)]) == 0
    assert secret.stat().st_mode & 0o077 == 0  # the secret key is private to its owner
    dist = tmp_path / "dist"
    dist.mkdir()
    artefacts = [dist / "doctorai-0.1.0-linux-x86_64.tar.gz", dist / "doctorai_0.1.0_amd64.deb"]
    artefacts[0].write_bytes(bytes(range(256)) * 5000)
    artefacts[1].write_bytes(b"!<arch>\n" + b"x" * 1000)
    monkeypatch.setenv(rs.KEY_ENV, str(secret))
    assert rs.main(["sign", str(dist), *map(str, artefacts)]) == 0
    return public, dist, artefacts


def run_verify(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(VERIFY), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_signed_release_verifies(release: tuple[Path, Path, list[Path]]) -> None:
    public, dist, artefacts = release
    sums = (dist / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split("  ")[1] for line in sums) == sorted(a.name for a in artefacts)
    for artefact in artefacts:
        assert (dist / (artefact.name + ".minisig")).is_file()
    proc = run_verify("--pubkey", public, *artefacts)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count(" OK: ") == 2


def test_sums_match_coreutils(release: tuple[Path, Path, list[Path]]) -> None:
    _public, dist, _artefacts = release
    if shutil.which("sha256sum") is None:
        pytest.skip("sha256sum (coreutils) not installed")
    proc = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=dist, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_tampered_artefact_is_refused(release: tuple[Path, Path, list[Path]]) -> None:
    public, _dist, artefacts = release
    data = bytearray(artefacts[0].read_bytes())
    data[1000] ^= 0x01  # one flipped bit
    artefacts[0].write_bytes(bytes(data))
    proc = run_verify("--pubkey", public, *artefacts)
    assert proc.returncode == 1
    assert "REFUSED" in proc.stderr
    assert artefacts[0].name in proc.stderr
    assert "modified" in proc.stderr
    assert proc.stdout.count(" OK: ") == 1  # the untouched one still verifies


def test_tampered_sums_are_refused(release: tuple[Path, Path, list[Path]]) -> None:
    """An attacker who replaces an artefact and rewrites SHA256SUMS still fails the signature."""
    public, dist, artefacts = release
    artefacts[1].write_bytes(b"evil")
    lines = (dist / "SHA256SUMS").read_text().splitlines()
    fixed = [
        f"{rs.sha256_file(artefacts[1])}  {artefacts[1].name}"
        if line.endswith(artefacts[1].name)
        else line
        for line in lines
    ]
    (dist / "SHA256SUMS").write_text("\n".join(fixed) + "\n")
    proc = run_verify("--pubkey", public, artefacts[1])
    assert proc.returncode == 1
    assert "SHA256SUMS" in proc.stderr
    assert "does NOT match its signature" in proc.stderr


def test_other_key_is_refused(release: tuple[Path, Path, list[Path]], tmp_path: Path) -> None:
    _public, _dist, artefacts = release
    other = tmp_path / "other.pub"
    rs.generate_keypair(tmp_path / "other.pem", other)
    proc = run_verify("--pubkey", other, artefacts[0])
    assert proc.returncode == 1
    assert "not with the given public key" in proc.stderr


def test_missing_signature_is_refused(release: tuple[Path, Path, list[Path]]) -> None:
    public, dist, artefacts = release
    (dist / (artefacts[0].name + ".minisig")).unlink()
    proc = run_verify("--pubkey", public, artefacts[0])
    assert proc.returncode == 1
    assert "no signature" in proc.stderr


def test_missing_public_key_is_a_usage_error(tmp_path: Path) -> None:
    proc = run_verify("--pubkey", tmp_path / "absent.pub", tmp_path / "x.deb")
    assert proc.returncode == 2
    assert "absent.pub" in proc.stderr


def test_wrong_passphrase_names_the_key(
    release: tuple[Path, Path, list[Path]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _public, dist, artefacts = release
    monkeypatch.setenv(rs.PASSPHRASE_ENV, "wrong")
    assert rs.main(["sign", str(dist), str(artefacts[0])]) == 1


def test_minisign_accepts_our_signatures(release: tuple[Path, Path, list[Path]]) -> None:
    """Interoperability: IT can verify with Debian's minisign instead of our script."""
    if shutil.which("minisign") is None:
        pytest.skip("minisign not installed (Debian: apt-get install minisign)")
    public, dist, artefacts = release
    for path in [*artefacts, dist / "SHA256SUMS"]:
        proc = subprocess.run(
            ["minisign", "-Vm", str(path), "-p", str(public)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
    artefacts[0].write_bytes(b"tampered")
    proc = subprocess.run(
        ["minisign", "-Vm", str(artefacts[0]), "-p", str(public)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0
