"""Run the benchmarks: ``python -m benchmarks [NAME ...]`` (default: all ``bench_*`` modules).

Each module defines ``main() -> None`` and prints its own figures as ratios against a baseline
measured in the same run; absolute times drift on shared machines, ratios much less.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import benchmarks


def main(argv: list[str]) -> int:
    # all benchmarks share this process and some import TensorFlow directly: load SQLCipher
    # first, as the application does, or the store benchmarks after them find it replaced
    from models.adapters.keras_adapter import _bind_sqlcipher_first

    _bind_sqlcipher_first()
    found = pkgutil.iter_modules(benchmarks.__path__)
    names = sorted(m.name for m in found if m.name.startswith("bench_"))
    wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in argv] or names
    failed = 0
    for name in wanted:
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        try:
            importlib.import_module(f"benchmarks.{name}").main()
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            failed += 1
            print(f"{name} FAILED: {type(exc).__name__}: {exc}", flush=True)
        print(f"({name} took {time.perf_counter() - start:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
