"""CycloneDX SBOM of what the bundle actually ships.

cyclonedx-py (the CycloneDX project's own tool) describes the whole build environment, which also
holds test, lint and backend packages that never reach the bundle. The spec writes the top-level
names it bundled (build/.../bundled-top-level.txt); this script keeps only the distributions
that provide one of them, plus their dependency edges, so the SBOM describes the installer.

    python packaging/sbom.py --python .venv/bin/python --bundled build/pyinstaller-cpu/\
doctorai/bundled-top-level.txt --out dist/release/doctorai-0.1.0-sbom.cdx.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
_PROBE = "import importlib.metadata as m, json; print(json.dumps(m.packages_distributions()))"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def bundled_distributions(python: Path, top_level: set[str]) -> set[str]:
    """Canonical names of the distributions that provide a bundled top-level module."""
    out = subprocess.run([str(python), "-c", _PROBE], capture_output=True, text=True, check=True)
    mapping: dict[str, list[str]] = json.loads(out.stdout)
    return {canonical(d) for module, dists in mapping.items() if module in top_level for d in dists}


def filter_bom(bom: dict[str, Any], keep: set[str], flavour: str) -> dict[str, Any]:
    """Drop components (and dependency edges) for distributions that are not bundled."""
    components = [c for c in bom.get("components", []) if canonical(c.get("name", "")) in keep]
    refs = {c["bom-ref"] for c in components}
    root = bom.get("metadata", {}).get("component", {}).get("bom-ref")
    if root:
        refs.add(root)
    deps = [
        {**d, "dependsOn": [r for r in d.get("dependsOn", []) if r in refs]}
        for d in bom.get("dependencies", [])
        if d.get("ref") in refs
    ]
    props = bom.setdefault("metadata", {}).setdefault("properties", [])
    props += [
        {"name": "doctorai:flavour", "value": flavour},
        {"name": "doctorai:scope", "value": "distributions shipped in the PyInstaller bundle"},
    ]
    return {**bom, "components": components, "dependencies": deps}


def build_sbom(python: Path, bundled: Path, out: Path, flavour: str) -> int:
    """Write the filtered SBOM; return the number of components in it."""
    top_level = {line.strip() for line in bundled.read_text().splitlines() if line.strip()}
    with tempfile.TemporaryDirectory() as tmp:
        full = Path(tmp) / "environment.cdx.json"
        tool = Path(python).parent / "cyclonedx-py"
        subprocess.run(
            [
                str(tool),
                "environment",
                "--pyproject",
                str(REPO / "pyproject.toml"),
                "--of",
                "JSON",
                "--output-reproducible",
                "-o",
                str(full),
                str(python),
            ],
            check=True,
        )
        bom = json.loads(full.read_text())
    result = filter_bom(bom, bundled_distributions(python, top_level), flavour)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return len(result["components"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CycloneDX SBOM of the bundle")
    parser.add_argument("--python", type=Path, required=True, help="the build environment's python")
    parser.add_argument("--bundled", type=Path, required=True, help="bundled-top-level.txt")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--flavour", default="cpu")
    args = parser.parse_args(argv)
    if not args.bundled.is_file():
        print(
            f"error: '{args.bundled}' not found (written by packaging/doctorai.spec)",
            file=sys.stderr,
        )
        return 1
    n = build_sbom(args.python, args.bundled, args.out, args.flavour)
    print(f"SBOM: {n} components -> '{args.out}'")
    return 0


if __name__ == "__main__":
    sys.exit(main())
