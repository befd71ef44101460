"""``doctorai --selftest``: prove an installed copy works end to end, headless, in seconds.

Why: hospital IT installs the workstation silently on many machines and needs one command that
says, with an exit code, whether *this* installation (a PyInstaller bundle, a .deb under /opt)
can start Qt, decode a DICOM file with the bundled decoders, encrypt with SQLCipher, load a zoo
model with its framework and run an inference. It prints one JSON object on stdout; exit 0 when
every check passed, 1 when any failed. Qt runs offscreen unless ``QT_QPA_PLATFORM`` says otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core import __version__

DEFAULT_MODEL = "chest-xray-pneumonia"
RESOURCES = Path(__file__).resolve().parents[1] / "resources"
SAMPLE_DICOM = RESOURCES / "sample" / "chest_cr" / "RG1_J2KI.dcm"


@dataclass
class Check:
    name: str
    ok: bool
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _timed(
    name: str, fn: Callable[[], dict[str, Any]], checks: list[Check]
) -> dict[str, Any] | None:
    """Run one check; any failure is recorded with its reason instead of aborting the run."""
    start = time.perf_counter()
    try:
        detail = fn()
    except Exception as exc:  # noqa: BLE001 - a self-test reports every failure, never crashes
        checks.append(
            Check(
                name,
                False,
                round(time.perf_counter() - start, 3),
                error=f"{type(exc).__name__}: {exc}",
            )
        )
        return None
    checks.append(Check(name, True, round(time.perf_counter() - start, 3), detail))
    return detail


class _Context:
    """What one check hands to the next (the decoded frame feeds the model)."""

    frame: Any = None
    image: Any = None


def _check_qt(ctx: _Context) -> dict[str, Any]:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice
    from PySide6.QtGui import QGuiApplication, QImage, QImageWriter
    from PySide6.QtWidgets import QApplication

    from desktop.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow()
    window.show()
    app.processEvents()
    grabbed = window.grab().size()
    window.close()
    window.shutdown()
    # The bundle ships only the png/jpeg image-format plugins: encode one of each to prove it.
    image = QImage(64, 64, QImage.Format.Format_Grayscale8)
    image.fill(128)
    encoded: dict[str, int] = {}
    for fmt in ("PNG", "JPEG"):
        data = QByteArray()
        buf = QBuffer(data)
        buf.open(QIODevice.OpenModeFlag.WriteOnly)
        # PySide6 takes a str here at run time although its stubs say bytes.
        if not image.save(buf, fmt):  # type: ignore[call-overload]
            raise RuntimeError(f"Qt cannot encode {fmt} (image-format plugin missing?)")
        encoded[fmt] = data.size()
    formats = sorted(bytes(f.data()).decode() for f in QImageWriter.supportedImageFormats())
    return {
        "platform": QGuiApplication.platformName(),
        "window": [grabbed.width(), grabbed.height()],
        "encoded_bytes": encoded,
        "image_formats": formats,
    }


def _check_dicom(ctx: _Context, path: Path) -> dict[str, Any]:
    from core.imaging.display import render
    from core.imaging.header import read_header
    from core.imaging.pixels import read_frame

    if not path.is_file():
        raise FileNotFoundError(f"DICOM file '{path}' does not exist")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        header = read_header(str(path), require_uids=False)
        ctx.frame = read_frame(header.instance, 0)
    ctx.image = render(ctx.frame)
    return {
        "path": str(path),
        "transfer_syntax": header.instance.transfer_syntax_uid,
        "shape": list(ctx.image.shape),
        "mean_display_value": round(float(ctx.image.mean()), 2),
    }


def _check_sqlcipher() -> dict[str, Any]:
    """The audit trail needs SQLCipher (core.store's own check on a scratch file)."""
    from core.store.database import sqlcipher_selftest

    return {"cipher_version": sqlcipher_selftest()}


def _check_model(ctx: _Context, model_id: str, device: str | None) -> dict[str, Any]:
    """Through the same ModelManager as the GUI and ``doctorai selftest``: the package's own
    health check (stored sample vs expected output), then one inference on the opened file."""
    from core.inference.manager import UnknownModelError, manager_from_settings
    from models.preprocess import preprocess_batch

    manager = manager_from_settings(device=device)
    try:
        try:
            package = manager.package(model_id)
        except UnknownModelError:
            found = ", ".join(sorted(p.id for p in manager.packages())) or "none"
            raise LookupError(f"no model '{model_id}' installed (found: {found})") from None
        record = manager.health_check(model_id)
        if not record.ok:
            raise RuntimeError(f"model '{model_id}' health check failed: {record.message}")
        detail: dict[str, Any] = {
            "model": model_id,
            "version": package.manifest.version,
            "framework": package.manifest.framework,
            "stored_sample": record.message,
        }
        with manager.use(model_id) as loaded:
            detail["device"] = str(loaded.device)
            if ctx.frame is not None and package.manifest.input.kind == "image":
                batch = preprocess_batch([ctx.frame], package.manifest.input, model_id)
                probs = loaded.predict(batch)[0]
                if not (abs(float(probs.sum()) - 1.0) < 1e-3 and float(probs.min()) >= 0.0):
                    raise RuntimeError(
                        f"model '{model_id}' gave invalid probabilities {probs.tolist()}"
                    )
                detail["dicom_prediction"] = dict(
                    zip(
                        package.manifest.output.labels,
                        (round(float(p), 4) for p in probs),
                        strict=True,
                    )
                )
        return detail
    finally:
        manager.shutdown()


def run(dicom: str | None = None, model_id: str | None = None, device: str | None = None) -> int:
    """Run every check, print the JSON report on stdout, return the exit code (0 all passed)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    dicom_path = Path(dicom) if dicom else SAMPLE_DICOM
    chosen_model = model_id or os.environ.get("DOCTORAI_SELFTEST_MODEL", DEFAULT_MODEL)
    ctx = _Context()
    checks: list[Check] = []
    start = time.perf_counter()
    _timed("qt", lambda: _check_qt(ctx), checks)
    _timed("dicom", lambda: _check_dicom(ctx, dicom_path), checks)
    _timed("sqlcipher", _check_sqlcipher, checks)
    _timed("model", lambda: _check_model(ctx, chosen_model, device), checks)
    ok = all(c.ok for c in checks)
    report = {
        "ok": ok,
        "version": __version__,
        "frozen": bool(getattr(sys, "frozen", False)),
        "python": sys.version.split()[0],
        "seconds": round(time.perf_counter() - start, 3),
        "checks": [asdict(c) for c in checks],
    }
    print(json.dumps(report, indent=2))
    return 0 if ok else 1
