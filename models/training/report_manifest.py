"""The report-drafter's manifest, built from the training report the training script measured.

    .venv/bin/python -m models.training.report_manifest models/zoo/report-drafter

rebuilds manifest.json (and the file hashes) from the package's ``training_report.json``
without retraining, for when the manifest schema or wording changes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.manifest import Manifest, write_manifest

MODEL_ID = "report-drafter"
VERSION = "1.0.0"
TRAINING_REPORT = "training_report.json"
SELFTEST_INPUT = "selftest/input.txt"
SELFTEST_EXPECTED = "selftest/expected.txt"
VALIDATION_FILE = "validation.jsonl"


def build_manifest(report: dict[str, Any]) -> dict[str, Any]:
    """The manifest fields (all but ``files``) for a training report."""
    exact, f1, n = float(report["exact_match"]), float(report["token_f1"]), int(report["n_val"])
    return {
        "schema_version": 1,
        "id": MODEL_ID,
        "name": "Report drafting: impression from structured findings (tiny T5)",
        "version": VERSION,
        "task": "text-generation",
        "framework": "transformers",
        "modalities": [],
        "body_parts": [],
        "input": {"kind": "text"},
        "output": {"labels": [], "activation": "none"},
        "weights": "model.safetensors",
        "metrics": {
            "dataset": "generated finding->impression pairs (models.training.report_pairs)",
            "split": "val",
            "n": n,
            "data_ref": f"package:{VALIDATION_FILE}",
            "scores": {"exact_match": exact, "token_f1": f1},
            "note": (
                "greedy drafts scored against the reference impressions in validation.jsonl "
                "by models.report_metrics.score: exact_match = fraction identical, "
                "token_f1 = mean word-level F1; synthetic data, no clinical accuracy implied"
            ),
        },
        "min_app_version": "0.1.0",
        "intended_use": (
            "drafts an impression sentence from structured findings for the radiologist to "
            "edit; demonstration only"
        ),
        "demo_only": True,
        "training_data": (
            "generated finding->impression pairs; synthetic "
            f"(models.training.report_pairs, seed {report['seed']}, {report['n_train']} train / "
            f"{n} val, disjoint inputs)"
        ),
        "selftest": {"input": SELFTEST_INPUT, "expected": SELFTEST_EXPECTED, "tolerance": 1e-4},
        "extra": {
            "max_new_tokens": int(report["max_new_tokens"]),
            "batch_size": int(report["batch_size_eval"]),
            "max_input_tokens": 256,
            "selftest_compare": "exact string match (greedy decoding is deterministic)",
            "tokenizer": "BPE trained from scratch on the training pairs (tokenizers library)",
        },
    }


def write_package_manifest(folder: Path, report: dict[str, Any]) -> Manifest:
    """Write the training report and self-test files, then the hashed manifest."""
    (folder / "selftest").mkdir(exist_ok=True)
    (folder / SELFTEST_INPUT).write_text(report["selftest_input"], encoding="utf-8")
    (folder / SELFTEST_EXPECTED).write_text(report["selftest_output"], encoding="utf-8")
    (folder / TRAINING_REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return write_manifest(folder, build_manifest(report))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="rebuild the report-drafter manifest")
    parser.add_argument("package", type=Path)
    args = parser.parse_args(argv)
    report = json.loads((args.package / TRAINING_REPORT).read_text(encoding="utf-8"))
    manifest = write_package_manifest(args.package, report)
    print(f"wrote {args.package / 'manifest.json'} ({len(manifest.files)} files hashed)")


if __name__ == "__main__":
    main()
