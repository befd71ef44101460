"""Placeholder: writes the training report until the manifest schema exists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_manifest(out: Path, report: dict[str, Any]) -> None:
    (out / "train_report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
