"""Before Qt starts on X11 the launcher names the system libraries Qt's xcb plugin lacks (and
their Debian packages) instead of Qt's 'could not load the Qt platform plugin "xcb"'. Correct on
a machine with and without those libraries: what is missing is asked of the loader here."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from desktop import xcb_check
from desktop.xcb_check import PACKAGES, describe, missing_libraries, uses_xcb, xcb_plugin

REPO = Path(__file__).resolve().parents[2]
#: What issue 14 found missing on a fresh Debian (README and .ci/run list the packages).
FRESH_DEBIAN = (
    "libxcb-cursor.so.0",
    "libxcb-icccm.so.4",
    "libxcb-keysyms.so.1",
    "libxcb-image.so.0",
    "libxcb-render-util.so.0",
    "libxcb-xkb.so.1",
    "libxkbcommon-x11.so.0",
    "libxcb-shape.so.0",
    "libxcb-randr.so.0",
)


def _loadable(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def test_missing_sonames_map_to_their_packages() -> None:
    text = describe(
        [
            "libxcb-cursor.so.0",
            "libxcb-icccm.so.4",
            "libxkbcommon-x11.so.0",
            "libxcb-util.so.1",
            "libfancy.so.3",
        ]
    )
    assert text.startswith("DoctorAI Workstation cannot open a window: missing system libraries ")
    assert "libxcb-cursor.so.0 (Debian/Ubuntu package libxcb-cursor0)" in text
    assert "libxcb-icccm.so.4 (Debian/Ubuntu package libxcb-icccm4)" in text
    assert "libxkbcommon-x11.so.0 (Debian/Ubuntu package libxkbcommon-x11-0)" in text
    assert "libfancy.so.3 (package unknown: `apt-file search libfancy.so.3` finds it)" in text
    assert (
        "Install them with: sudo apt-get install libxcb-cursor0 libxcb-icccm4 "
        "libxkbcommon-x11-0 libxcb-util1 ("
    ) in text
    one = describe(["libxcb-keysyms.so.1"])
    assert (
        "missing system library libxcb-keysyms.so.1 (Debian/Ubuntu package "
        "libxcb-keysyms1). Install it with: sudo apt-get install libxcb-keysyms1 (" in one
    )
    for soname in (*FRESH_DEBIAN, "libxcb-xinerama.so.0"):
        assert soname in PACKAGES  # every library the issue names has its package


@pytest.mark.parametrize(
    ("env", "platform", "expected"),
    [
        ({"QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"QT_QPA_PLATFORM": "xcb:nograb"}, "linux", True),
        ({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, "linux", False),
        ({"QT_QPA_PLATFORM": "wayland;xcb", "DISPLAY": ":0"}, "linux", False),
        ({"DISPLAY": ":0"}, "linux", True),
        (
            {"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"},
            "linux",
            False,
        ),
        ({}, "linux", False),
        ({"DISPLAY": ":0"}, "darwin", False),
        ({"QT_QPA_PLATFORM": "xcb"}, "win32", False),
    ],
)
def test_the_check_runs_only_when_qt_would_load_xcb(
    env: dict[str, str], platform: str, expected: bool
) -> None:
    assert uses_xcb(env, platform) is expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libqxcb.so exists on Linux")
def test_the_real_plugin_names_exactly_what_this_machine_lacks() -> None:
    plugin = xcb_plugin()
    assert plugin is not None, "PySide6 ships plugins/platforms/libqxcb.so on Linux"
    missing = missing_libraries(plugin)
    absent_here = {so for so in FRESH_DEBIAN if not _loadable(so)}  # the loader, asked apart
    assert absent_here <= set(missing)
    assert not set(missing) & {so for so in FRESH_DEBIAN if so not in absent_here}
    message = xcb_check.missing_xcb_message({"QT_QPA_PLATFORM": "xcb"})
    if missing:
        assert message is not None
        for soname in missing:
            assert soname in message
    else:
        assert message is None
    assert xcb_check.missing_xcb_message({"QT_QPA_PLATFORM": "offscreen"}) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libqxcb.so exists on Linux")
def test_the_launcher_names_the_missing_libraries_instead_of_qts_message(tmp_path: Path) -> None:
    plugin = xcb_plugin()
    assert plugin is not None
    missing = missing_libraries(plugin)
    env = dict(
        os.environ,
        QT_QPA_PLATFORM="xcb",
        DISPLAY=":97",  # no X server there
        DOCTORAI_HOME=str(tmp_path / "profile"),
    )
    run = subprocess.run(
        [sys.executable, "-m", "desktop.launcher"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if missing:
        assert run.returncode == 2, run.stderr
        assert "DoctorAI Workstation cannot open a window: missing system librar" in run.stderr
        for soname in missing:
            assert f"{soname} (Debian/Ubuntu package {PACKAGES[soname]})" in run.stderr
        assert "sudo apt-get install " in run.stderr
        assert 'Could not load the Qt platform plugin "xcb"' not in run.stderr
        assert not (tmp_path / "profile").exists()  # stopped before anything else started
    else:  # every library is there: the check stays silent and Qt meets the absent display
        assert "cannot open a window: missing" not in run.stderr
        assert run.returncode != 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="libqxcb.so exists on Linux")
def test_without_ldd_the_loader_is_asked_library_by_library(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert xcb_check._missing_by_dlopen(["libc.so.6", "libdoctorai-absent.so.7"]) == [
        "libdoctorai-absent.so.7"
    ]
    plugin = xcb_plugin()
    assert plugin is not None
    with_ldd = missing_libraries(plugin)
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without ldd (e.g. no libc-bin)
    without = missing_libraries(plugin)
    assert set(without) & set(FRESH_DEBIAN) == set(with_ldd) & set(FRESH_DEBIAN)
