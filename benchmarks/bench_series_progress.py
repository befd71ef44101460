"""What per-image progress costs a series run: ``run_images`` with Grad-CAM (as the window runs
it) over the real 24-slice MR series in batches of 16 (the queue's default; progress then moves
twice) against smaller batches (progress moves more often). Variants measured round-robin in
one run; the ratio is the throughput of each batch size against batches of 16.
"""

from __future__ import annotations

import time

import numpy as np

from benchmarks.bench_inference import MR_DIR, _manager, _slices


def main() -> None:
    if not MR_DIR.is_dir():
        print(f"series progress: skipped, the shared MR series is not at '{MR_DIR}'")
        return
    from core.imaging.volume import load_slice
    from core.inference.pipeline import run_images
    from core.inference.result import InputRef

    model_id = "brain-tumour-mri"
    _instances, refs = _slices(MR_DIR)
    frames = [load_slice(r.instance, r.frame) for r in refs]
    inputs = [InputRef(r.instance.sop_instance_uid, r.frame) for r in refs]
    n = len(frames)
    manager = _manager()
    sizes = (16, 8, 4, 2, 1)
    times: dict[int, list[float]] = {b: [] for b in sizes}
    ticks: dict[int, int] = {}

    def run(batch: int) -> None:
        seen: list[int] = []
        run_images(
            manager,
            model_id,
            frames,
            inputs,
            batch_size=batch,
            progress=lambda d, _t: seen.append(d),
        )
        ticks[batch] = len(seen)

    for b in sizes:  # warm-up: load, graph tracing per batch shape
        run(b)
        run(b)
    for _ in range(7):
        for b in sizes:
            start = time.perf_counter()
            run(b)
            times[b].append(time.perf_counter() - start)
    manager.shutdown()
    base = float(np.median(times[16]))
    print(
        f"series progress: {model_id} with Grad-CAM on the {n}-slice MR series, "
        f"batches of 16 = 1.00x ({n / base:.0f} img/s, {ticks[16]} progress steps)"
    )
    for b in sizes[1:]:
        t = float(np.median(times[b]))
        print(f"  batches of {b}: {base / t:.2f}x throughput, {ticks[b]} progress steps")


if __name__ == "__main__":
    main()
