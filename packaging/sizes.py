"""Size of a one-folder bundle per component (for the README and to catch bloat in review).

Files under ``_internal/`` are attributed by their top-level folder; Python modules live in the
PYZ archive embedded in the executable, so that archive is opened (PyInstaller's own reader) and
its compressed entries are attributed by top-level package too.

    python packaging/sizes.py dist/cpu/doctorai [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

# component -> top-level names (folders under _internal, or Python packages in the PYZ)
COMPONENTS: dict[str, tuple[str, ...]] = {
    "Qt (PySide6, shiboken6)": ("PySide6", "shiboken6", "superqt"),
    "torch": ("torch", "functorch", "torchgen", "torch.libs"),
    "tensorflow + keras": (
        "tensorflow",
        "tensorflow_cpu.libs",
        "keras",
        "tf_keras",
        "ml_dtypes",
        "h5py",
        "h5py.libs",
        "optree",
        "jax",
        "google",
        "absl",
        "grpc",
        "flatbuffers",
        "opt_einsum",
        "namex",
        "rich",
        "wrapt",
        "gast",
        "termcolor",
        "astunparse",
    ),
    "xgboost": ("xgboost", "xgboost.libs", "xgboost_cpu.libs"),
    "transformers (+ tokenizers, safetensors, hub)": (
        "transformers",
        "tokenizers",
        "safetensors",
        "huggingface_hub",
        "hf_xet",
        "regex",
    ),
    "numpy / scipy": ("numpy", "numpy.libs", "scipy", "scipy.libs"),
    "DICOM decoders (pydicom, pylibjpeg, gdcm)": (
        "pydicom",
        "pylibjpeg",
        "libjpeg",
        "openjpeg",
        "rle",
        "gdcm",
        "_gdcm",
        "python_gdcm.libs",
        "_libjpeg",
        "_openjpeg",
        "_CharLS",
        "highdicom",
        "pillow.libs",
        "PIL",
    ),
    "SQLCipher + SQLAlchemy": ("sqlcipher3", "sqlalchemy", "alembic"),
    "Python runtime (libpython, stdlib)": (
        "libpython3.11.so.1.0",
        "python3.11",
        "base_library.zip",
        "encodings",
        "collections",
        "importlib",
        "email",
        "json",
        "xml",
        "asyncio",
        "unittest",
        "logging",
        "multiprocessing",
        "concurrent",
        "http",
        "urllib",
        "ctypes",
        "sqlite3",
        "lib-dynload",
    ),
    "model zoo": ("models/zoo",),  # before "our code": its folder is inside models/
    "our code (core, desktop, models)": ("core", "desktop", "models", "doctorai_main"),
    "resources": ("resources",),
}


def _component_of(name: str) -> str:
    for component, names in COMPONENTS.items():
        if any(name == n or name.startswith(n + "/") or name.startswith(n + ".") for n in names):
            return component
    return "other libraries (cryptography, pydantic, lxml, ...)"


def _pyz_sizes(exe: Path) -> dict[str, int]:
    """Compressed size of each module in the executable's PYZ, by top-level package."""
    from PyInstaller.archive.readers import CArchiveReader

    sizes: dict[str, int] = defaultdict(int)
    archive = CArchiveReader(str(exe))
    pyz_names = [n for n in archive.toc if n.endswith(".pyz")]
    for pyz_name in pyz_names:
        pyz = archive.open_embedded_archive(pyz_name)
        for module, entry in pyz.toc.items():
            sizes[module] += int(entry[2])
    return sizes


def measure(bundle: Path) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    internal = bundle / "_internal"
    for path in internal.rglob("*"):
        if path.is_file() and not path.is_symlink():
            rel = path.relative_to(internal).as_posix()
            totals[_component_of(rel)] += path.stat().st_size
    exe = bundle / "doctorai"
    exe_size = exe.stat().st_size
    try:
        pyz = _pyz_sizes(exe)
    except Exception:  # noqa: BLE001 - sizes are a report; fall back to "executable" as one item
        pyz = {}
    for module, size in pyz.items():
        totals[_component_of(module)] += size
        exe_size -= size
    totals["executable (bootloader)" if pyz else "executable (with PYZ)"] += max(exe_size, 0)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bundle size per component")
    parser.add_argument("bundle", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not (args.bundle / "_internal").is_dir():
        print(f"error: '{args.bundle}' is not a PyInstaller one-folder bundle", file=sys.stderr)
        return 1
    totals = measure(args.bundle)
    if args.json:
        print(json.dumps(totals, indent=2))
        return 0
    mib = 1024 * 1024
    print("| Component | MiB |\n|---|---:|")
    for component, size in totals.items():
        print(f"| {component} | {size / mib:.1f} |")
    print(f"| **total** | **{sum(totals.values()) / mib:.1f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
