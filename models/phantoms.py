"""Seeded synthetic images for the zoo's demonstration models (no real labelled data here).

MR-like brain slices with/without a lesion (and its mask), H&E-like tissue textures in five
classes, and skin-like patches with/without a pustular lesion. Deterministic for a given seed,
so `models verify --eval` regenerates exactly the validation set a package was measured on.
Numpy (+ pillow for smooth noise) only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
U8 = npt.NDArray[np.uint8]

HISTO_CLASSES = [
    "colon_adenocarcinoma",
    "colon_benign",
    "lung_adenocarcinoma",
    "lung_benign",
    "lung_squamous_cell_carcinoma",
]


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> F32:
    """Low-frequency noise in [-1, 1]: a coarse random grid upsampled bilinearly."""
    from PIL import Image

    coarse = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    up = Image.fromarray(coarse, mode="F").resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(up, dtype=np.float32)


def _grid(size: int) -> tuple[F32, F32]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy, xx


def brain_slice(
    rng: np.random.Generator,
    lesion: bool,
    size: int = 64,
    lesion_center: tuple[float, float] | None = None,
    lesion_radius: float | None = None,
) -> tuple[F32, npt.NDArray[np.bool_]]:
    """One MR-like axial slice (arbitrary intensity units, ~0-1000) and its lesion mask."""
    yy, xx = _grid(size)
    cy, cx = size / 2 + rng.uniform(-2, 2), size / 2 + rng.uniform(-2, 2)
    ay, ax = size * rng.uniform(0.40, 0.45), size * rng.uniform(0.33, 0.39)
    r = ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2
    head, brain = r <= 1.0, r <= 0.80
    img = np.zeros((size, size), np.float32)
    img[head] = 650.0  # scalp / skull marrow
    img[(r > 0.80) & (r <= 0.90)] = 120.0  # cortical bone: dark on MR
    tissue = 420.0 + 50.0 * _smooth_noise(rng, size, 6) + 30.0 * _smooth_noise(rng, size, 12)
    img[brain] = tissue[brain]
    for side in (-1, 1):  # lateral ventricles
        vy, vx = cy + rng.uniform(-2, 1), cx + side * size * rng.uniform(0.05, 0.07)
        vent = ((yy - vy) / (size * 0.10)) ** 2 + ((xx - vx) / (size * 0.035)) ** 2 <= 1
        img[vent & brain] = 180.0
    mask = np.zeros((size, size), bool)
    if lesion:
        rad = lesion_radius if lesion_radius is not None else rng.uniform(4.0, 7.5)
        if lesion_center is None:
            ang, frac = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0.0, 1.0)) * 0.55
            ly, lx = cy + np.sin(ang) * frac * ay, cx + np.cos(ang) * frac * ax
        else:
            ly, lx = lesion_center
        dist = np.sqrt((yy - ly) ** 2 + (xx - lx) ** 2)
        mask = (dist <= rad) & brain
        rim = np.clip(1.0 - np.abs(dist - rad * 0.75) / (rad * 0.35), 0, 1)
        core = np.clip(1.0 - dist / rad, 0, 1)
        necrotic = rng.uniform() < 0.5
        bump = 380.0 * rim + (0.0 if necrotic else 250.0 * core)
        img = np.where(brain, img + bump * (dist <= rad * 1.1), img).astype(np.float32)
    img += rng.normal(0, 18.0, img.shape).astype(np.float32)
    return np.clip(img, 0, None).astype(np.float32), mask


def brain_dataset(
    n: int, seed: int, size: int = 64
) -> tuple[F32, npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """n slices, half with a lesion (label 1), in shuffled order; also the lesion masks."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    images, masks = zip(*(brain_slice(rng, bool(lab), size) for lab in labels), strict=True)
    return np.stack(images), labels, np.stack(masks)


def _discs(
    img: npt.NDArray[Any],
    rng: np.random.Generator,
    n: int,
    rad: tuple[float, float],
    color: tuple[float, float, float],
    jitter: float = 0.08,
    centers: npt.NDArray[np.float32] | None = None,
) -> None:
    size = img.shape[0]
    yy, xx = _grid(size)
    pts = centers if centers is not None else rng.uniform(0, size, (n, 2))
    for y, x in pts:
        r = rng.uniform(*rad)
        ey = rng.uniform(0.7, 1.3)
        m = ((yy - y) * ey) ** 2 + ((xx - x) / ey) ** 2 <= r * r
        img[m] = np.clip(np.asarray(color) * rng.uniform(1 - jitter, 1 + jitter, 3), 0, 255)


def histo_patch(rng: np.random.Generator, cls: int, size: int = 48) -> U8:
    """An H&E-like RGB patch of class ``HISTO_CLASSES[cls]``."""
    eosin = np.array([236, 160, 200], np.float32) * rng.uniform(0.92, 1.05, 3)
    img = np.ones((size, size, 3), np.float32) * eosin
    img += 18.0 * _smooth_noise(rng, size, 8)[:, :, None]
    nuc = np.array([95, 55, 150], np.float32) * rng.uniform(0.85, 1.1)
    white = (245.0, 240.0, 245.0)
    name = HISTO_CLASSES[cls]
    yy, xx = _grid(size)
    if name == "lung_benign":  # big alveolar spaces, thin septa, sparse small nuclei
        _discs(img, rng, int(rng.integers(7, 11)), (5.0, 8.0), white)
        _discs(img, rng, int(rng.integers(6, 12)), (0.8, 1.3), tuple(nuc))
    elif name == "colon_benign":  # round glands lined by regular small nuclei
        for _ in range(int(rng.integers(2, 4))):
            gy, gx, gr = rng.uniform(8, size - 8), rng.uniform(8, size - 8), rng.uniform(4, 7)
            _discs(img, rng, 0, (gr, gr), white, centers=np.array([[gy, gx]], np.float32))
            ang = np.linspace(0, 2 * np.pi, 14, endpoint=False)
            ring = np.stack([gy + (gr + 1.5) * np.sin(ang), gx + (gr + 1.5) * np.cos(ang)], 1)
            _discs(img, rng, 0, (0.9, 1.2), tuple(nuc), centers=ring.astype(np.float32))
    elif name == "colon_adenocarcinoma":  # crowded large irregular nuclei, dirty small lumens
        _discs(img, rng, int(rng.integers(2, 4)), (2.0, 3.5), (225.0, 190.0, 215.0))
        _discs(img, rng, int(rng.integers(45, 65)), (1.5, 2.6), tuple(nuc * 0.85), jitter=0.2)
    elif name == "lung_adenocarcinoma":  # medium lumens, pleomorphic nuclei
        _discs(img, rng, int(rng.integers(3, 6)), (3.0, 5.0), white)
        _discs(img, rng, int(rng.integers(25, 40)), (1.2, 3.0), tuple(nuc), jitter=0.25)
    else:  # squamous cell carcinoma: pink sheets, keratin pearls, large nuclei
        for _ in range(int(rng.integers(1, 3))):
            py, px, pr = rng.uniform(6, size - 6), rng.uniform(6, size - 6), rng.uniform(4, 7)
            d = np.sqrt((yy - py) ** 2 + (xx - px) ** 2)
            swirl = (d <= pr) * (0.5 + 0.5 * np.cos(d * 2.2))
            img += swirl[:, :, None] * np.array([10.0, -40.0, -10.0], np.float32)
        _discs(img, rng, int(rng.integers(18, 30)), (1.8, 2.8), tuple(nuc * 0.9), jitter=0.15)
    img += rng.normal(0, 6.0, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def histo_dataset(n: int, seed: int, size: int = 48) -> tuple[U8, npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(HISTO_CLASSES)).astype(np.int64)
    return np.stack([histo_patch(rng, int(c), size) for c in labels]), labels


def skin_patch(rng: np.random.Generator, lesion: bool, size: int = 64) -> U8:
    """A skin-like RGB patch; with ``lesion``, 1-3 umbilicated pustules with red areolae."""
    tone = np.array([225, 180, 150], np.float32) * rng.uniform(0.55, 1.05)
    img = np.ones((size, size, 3), np.float32) * tone
    img += 14.0 * _smooth_noise(rng, size, 5)[:, :, None]
    img += rng.normal(0, 5.0, (size, size, 1)).astype(np.float32)
    yy, xx = _grid(size)
    for _ in range(int(rng.integers(0, 6))):  # freckles: small brown dots, not lesions
        fy, fx = rng.uniform(0, size, 2)
        d = np.sqrt((yy - fy) ** 2 + (xx - fx) ** 2)
        img -= (d <= rng.uniform(0.8, 1.8))[:, :, None] * np.array([45, 50, 45], np.float32)
    if lesion:
        for _ in range(int(rng.integers(1, 4))):
            ly, lx = rng.uniform(10, size - 10, 2)
            r = rng.uniform(4.0, 9.0)
            d = np.sqrt((yy - ly) ** 2 + (xx - lx) ** 2)
            areola = np.clip(1.0 - np.abs(d - r) / (r * 0.45), 0, 1)
            pustule = np.clip(1.0 - d / (r * 0.7), 0, 1)
            img += areola[:, :, None] * np.array([10.0, -70.0, -60.0], np.float32)
            img += pustule[:, :, None] * (np.array([250, 240, 215], np.float32) - img) * 0.8
            img -= (d <= r * 0.18)[:, :, None] * np.array([70, 80, 70], np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def skin_dataset(n: int, seed: int, size: int = 64) -> tuple[U8, npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2).astype(np.int64)
    return np.stack([skin_patch(rng, bool(c), size) for c in labels]), labels
