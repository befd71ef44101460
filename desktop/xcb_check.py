"""Before Qt starts on X11: name the system libraries Qt's xcb platform plugin lacks.

Without them Qt only says 'could not load the Qt platform plugin "xcb" even though it was
found' and aborts; a fresh Debian lacks several (libxcb-cursor0, libxcb-icccm4, ...). The check
runs only when Qt would pick xcb, asks the dynamic loader once (``ldd`` on the plugin: about
10 ms; a dlopen of each known library where there is no ``ldd``), and imports no Qt.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

#: soname -> the Debian/Ubuntu package that ships it (Qt 6's xcb plugin and what it loads).
PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-glx.so.0": "libxcb-glx0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
}

#: What Qt 6's libqxcb.so and libQt6XcbQpa.so.6 link (readelf -d): checked one by one with
#: dlopen where there is no ``ldd``.
REQUIRED = (
    "libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-keysyms.so.1", "libxcb-image.so.0",
    "libxcb-render-util.so.0", "libxcb-xkb.so.1", "libxkbcommon-x11.so.0", "libxcb-shape.so.0",
    "libxcb-randr.so.0", "libxcb-util.so.1", "libxcb-shm.so.0", "libxcb-sync.so.1",
    "libxcb-xfixes.so.0", "libxcb-render.so.0", "libxcb.so.1", "libX11-xcb.so.1", "libX11.so.6",
    "libxkbcommon.so.0", "libGL.so.1", "libglib-2.0.so.0", "libgthread-2.0.so.0",
)  # fmt: skip

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)
_CANNOT_OPEN = re.compile(r"(\S+\.so[.\d]*): cannot open shared object file")


def uses_xcb(env: Mapping[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether Qt will try the xcb plugin first: QT_QPA_PLATFORM names it first, or it is
    unset on Linux/BSD with an X display and no Wayland session (offscreen, wayland, eglfs,
    vnc ... and macOS/Windows never load it)."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    if platform.startswith(("win", "cygwin", "darwin")):
        return False
    chosen = env.get("QT_QPA_PLATFORM", "").strip()
    if chosen:  # "xcb", "xcb:option=x", "wayland;xcb" (a list: the first that loads wins)
        return chosen.split(";")[0].split(":")[0].strip() == "xcb"
    wayland = env.get("XDG_SESSION_TYPE") == "wayland" and bool(env.get("WAYLAND_DISPLAY"))
    return bool(env.get("DISPLAY")) and not wayland


def xcb_plugin() -> Path | None:
    """PySide6's libqxcb.so, found without importing Qt; None when there is none."""
    spec = importlib.util.find_spec("PySide6")
    for root in (spec.submodule_search_locations or []) if spec else []:
        plugin = Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def missing_libraries(plugin: Path) -> list[str]:
    """Sonames the dynamic loader cannot find for ``plugin`` (and what it loads), in order."""
    ldd = shutil.which("ldd")
    if ldd is not None:
        try:
            out = subprocess.run(
                [ldd, str(plugin)], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None and "=>" in out:
            return list(dict.fromkeys(_NOT_FOUND.findall(out)))
    return _missing_by_dlopen(REQUIRED)


def _missing_by_dlopen(sonames: Iterable[str]) -> list[str]:
    missing: list[str] = []
    for soname in sonames:
        try:
            ctypes.CDLL(soname)
        except OSError as exc:  # the message names the library that is really absent
            found = _CANNOT_OPEN.search(str(exc))
            name = found.group(1) if found else soname
            if name not in missing:
                missing.append(name)
    return missing


def describe(missing: Iterable[str]) -> str:
    """The message for the user: each library with its package, and the command to run."""
    missing = list(missing)
    named = [
        f"{so} (Debian/Ubuntu package {PACKAGES[so]})"
        if so in PACKAGES
        else f"{so} (package unknown: `apt-file search {so}` finds it)"
        for so in missing
    ]
    packages = list(dict.fromkeys(PACKAGES[so] for so in missing if so in PACKAGES))
    text = (
        "DoctorAI Workstation cannot open a window: missing system "
        f"{'library' if len(missing) == 1 else 'libraries'} {', '.join(named)}."
    )
    if packages:
        text += (
            f" Install {'it' if len(packages) == 1 else 'them'} with: sudo apt-get install "
            + " ".join(packages)
        )
    return text + " (Qt's X11 platform plugin, libqxcb.so, needs them.)"


def missing_xcb_message(env: Mapping[str, str] | None = None) -> str | None:
    """The message naming what Qt's xcb plugin lacks here, or None (not xcb, or nothing
    missing, or no plugin to check: Qt then speaks for itself)."""
    if not uses_xcb(env):
        return None
    plugin = xcb_plugin()
    if plugin is None:
        return None
    missing = missing_libraries(plugin)
    return describe(missing) if missing else None
