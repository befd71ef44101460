"""Build the .deb from a one-folder bundle with dpkg-deb (no debhelper: the bundle is prebuilt).

Layout it installs (and why):
  /opt/doctorai/                    the PyInstaller bundle, self-contained (FHS add-on package)
  /usr/bin/doctorai                 a wrapper, so the command is on every user's PATH
  /usr/share/applications/doctorai.desktop   the menu entry
  /etc/doctorai/config.toml         machine-wide settings; a conffile, so dpkg keeps IT's edits
                                    across upgrades and removes it only on purge
  /usr/share/doc/doctorai/          the documented example config and the copyright notice
Maintainer scripts (packaging/debian/) never delete profile data; see postrm for purge.

    python packaging/deb.py --bundle dist/cpu/doctorai --out dist/release [--version V]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEBIAN = HERE / "debian"
PACKAGE = "doctorai"
CONFFILE = "/etc/doctorai/config.toml"
# Qt's xcb platform plugin and the offscreen one need these system libraries; the bundle carries
# Qt itself and everything Python-side.
DEPENDS = (
    "libc6 (>= 2.28), libgl1, libegl1, libfontconfig1, libfreetype6, libdbus-1-3, "
    "libxkbcommon0, libxkbcommon-x11-0, libxcb-cursor0, libxcb-icccm4, libxcb-keysyms1, "
    "libxcb-shape0, libxcb-randr0, libxcb-render-util0, libxcb-xkb1"
)


class DebError(Exception):
    """The .deb could not be built (missing bundle, dpkg-deb failure)."""


def app_version() -> str:
    """core.__version__, read without importing the application."""
    text = (REPO / "core" / "__init__.py").read_text()
    match = re.search(r'^__version__\s*=\s*"([^"]+)"', text, re.M)
    if not match:
        raise DebError("cannot find __version__ in core/__init__.py")
    return match.group(1)


def conffile_text(example: str) -> str:
    """The shipped /etc file: the documented example, every line commented out (defaults apply)."""
    commented = "".join(f"# {line}\n" if line.strip() else "\n" for line in example.splitlines())
    return (
        "# DoctorAI Workstation machine-wide settings (installed by the doctorai package).\n"
        "# Everything below is commented out, so built-in defaults apply. Uncomment and edit,\n"
        "# or replace this file from your configuration management; dpkg keeps your version\n"
        "# on upgrade (non-interactive: apt-get -o Dpkg::Options::=--force-confold ...).\n"
        "# Documentation: /usr/share/doc/doctorai/config.example.toml\n#\n" + commented
    )


def control_text(version: str, arch: str, installed_kb: int) -> str:
    return (
        f"Package: {PACKAGE}\n"
        f"Version: {version}\n"
        f"Architecture: {arch}\n"
        "Maintainer: DoctorAI Release Engineering <release@doctorai.example>\n"
        f"Installed-Size: {installed_kb}\n"
        f"Depends: {DEPENDS}\n"
        "Section: science\n"
        "Priority: optional\n"
        "Description: DoctorAI Workstation - radiology viewer with on-device AI\n"
        " DICOM viewer, on-device AI models (GPU when present, CPU otherwise) and an\n"
        " encrypted, tamper-evident audit trail that syncs with a central backend.\n"
        " Self-contained bundle under /opt/doctorai; settings in /etc/doctorai.\n"
    )


def _install(src: Path, dest: Path, mode: int) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    dest.chmod(mode)


def _du_kb(root: Path) -> int:
    total = sum(p.lstat().st_size for p in root.rglob("*") if not p.is_dir())
    return (total + 1023) // 1024


def stage(bundle: Path, root: Path, version: str, arch: str, example: Path) -> None:
    """Lay out the package tree under ``root`` (hard links for the bundle: fast, no extra disk)."""
    if not (bundle / PACKAGE).is_file():
        raise DebError(f"bundle '{bundle}' has no '{PACKAGE}' executable (run pyinstaller first)")
    opt = root / "opt" / PACKAGE
    opt.parent.mkdir(parents=True)
    try:
        shutil.copytree(bundle, opt, symlinks=True, copy_function=os.link)
    except OSError:  # another file system: copy instead
        shutil.rmtree(opt, ignore_errors=True)
        shutil.copytree(bundle, opt, symlinks=True)
    _install(DEBIAN / "doctorai.wrapper", root / "usr/bin" / PACKAGE, 0o755)
    _install(DEBIAN / "doctorai.desktop", root / "usr/share/applications/doctorai.desktop", 0o644)
    _install(DEBIAN / "copyright", root / "usr/share/doc" / PACKAGE / "copyright", 0o644)
    _install(example, root / "usr/share/doc" / PACKAGE / "config.example.toml", 0o644)
    etc = root / CONFFILE.lstrip("/")
    etc.parent.mkdir(parents=True)
    etc.write_text(conffile_text(example.read_text()))
    etc.chmod(0o644)
    meta = root / "DEBIAN"
    meta.mkdir()
    for script in ("postinst", "prerm", "postrm"):
        _install(DEBIAN / script, meta / script, 0o755)
    (meta / "conffiles").write_text(CONFFILE + "\n")
    (meta / "control").write_text(control_text(version, arch, _du_kb(root)))


def build_deb(
    bundle: Path,
    out_dir: Path,
    *,
    version: str | None = None,
    arch: str = "amd64",
    example: Path = HERE / "config.example.toml",
    compression: str = "gzip",
    work: Path | None = None,
) -> Path:
    """Stage and build ``doctorai_<version>_<arch>.deb`` in ``out_dir``; return its path."""
    version = version or app_version()
    if shutil.which("dpkg-deb") is None:
        raise DebError("dpkg-deb not found (Debian/Ubuntu: apt-get install dpkg)")
    out_dir.mkdir(parents=True, exist_ok=True)
    root = (work or out_dir) / f".deb-root-{arch}"
    shutil.rmtree(root, ignore_errors=True)
    try:
        stage(bundle, root, version, arch, example)
        out = out_dir / f"{PACKAGE}_{version}_{arch}.deb"
        # Level 6: as small as dpkg-deb's default 9 within 1% on these binaries, in half the time.
        level = ["-z6"] if compression in ("gzip", "xz") else []
        proc = subprocess.run(
            [
                "dpkg-deb",
                "--root-owner-group",
                f"-Z{compression}",
                *level,
                "--build",
                str(root),
                str(out),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise DebError(f"dpkg-deb failed building '{out}': {proc.stderr.strip()}")
        return out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build the DoctorAI .deb with dpkg-deb")
    parser.add_argument("--bundle", type=Path, required=True, help="PyInstaller one-folder output")
    parser.add_argument("--out", type=Path, required=True, help="folder for the .deb")
    parser.add_argument("--version", default=None, help="default: core.__version__")
    parser.add_argument("--arch", default="amd64")
    parser.add_argument("--compression", default="gzip", choices=["gzip", "xz", "zstd", "none"])
    args = parser.parse_args(argv)
    try:
        out = build_deb(
            args.bundle,
            args.out,
            version=args.version,
            arch=args.arch,
            compression=args.compression,
        )
    except DebError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"built: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
