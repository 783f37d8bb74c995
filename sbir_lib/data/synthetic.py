"""Synthetic stand-ins for the datasets, so every notebook and test runs without downloads.

Taught in: ``notebooks/00_data_and_domain_gap.ipynb`` (the stand-in used when QMUL is not downloaded).

- :func:`make_synthetic`: a fine-grained set shaped like QMUL-V1 (:class:`~sbir_lib.data.datasets.QMULDataset`):
  procedurally drawn shoe-like objects sharing a few coarse shape families and differing in small details
  (buckles, dots, stripes, notches ...), with an abstracted, misaligned *sketch*, a clean-but-cluttered
  *edge map*, a flat-colour *photo* and QMUL-style (more, less similar) annotation per instance.
- :func:`make_synthetic_categories`: a category-level set shaped like Sketchy-mini
  (:class:`~sbir_lib.data.datasets.CategoryDataset`), one random closed shape family per class.
- :func:`load_fg_dataset`: the real QMUL-V1 set when its files are under the data root, else the synthetic
  one, with a warning that names the download command.

Everything is deterministic by ``seed`` (NumPy ``default_rng``); white background (255), dark strokes, uint8.
"""
from __future__ import annotations

import colorsys
import logging
import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from sbir_lib.core import config
from sbir_lib.data.datasets import (QMUL_ANNOTATED, QMUL_NAMES, CategoryDataset, QMULDataset, QMULSplit, load_qmul,
                                    qmul_dir, real_data_available)

logger = logging.getLogger(__name__)

__all__ = ["make_synthetic", "make_synthetic_categories", "load_fg_dataset"]

# Shoe-like side views in unit coordinates (x to the toe, y down); smoothed with Chaikin's algorithm.
_SHOE_FAMILIES = {
    "sneaker": dict(
        outline=[(0.12, 0.72), (0.86, 0.72), (0.93, 0.66), (0.91, 0.58), (0.80, 0.53), (0.64, 0.46),
                 (0.55, 0.37), (0.47, 0.35), (0.41, 0.44), (0.27, 0.43), (0.16, 0.40), (0.11, 0.53)],
        inner=[[(0.14, 0.665), (0.90, 0.665)], [(0.55, 0.38), (0.60, 0.50)]]),
    "boot": dict(
        outline=[(0.16, 0.78), (0.85, 0.78), (0.92, 0.72), (0.90, 0.63), (0.74, 0.57), (0.58, 0.50),
                 (0.53, 0.40), (0.52, 0.15), (0.24, 0.15), (0.22, 0.40), (0.16, 0.60)],
        inner=[[(0.18, 0.72), (0.89, 0.72)], [(0.24, 0.20), (0.52, 0.20)]]),
    "pump": dict(
        outline=[(0.19, 0.82), (0.24, 0.82), (0.26, 0.62), (0.42, 0.66), (0.62, 0.73), (0.82, 0.75),
                 (0.93, 0.71), (0.90, 0.63), (0.72, 0.57), (0.54, 0.53), (0.37, 0.49), (0.22, 0.42),
                 (0.16, 0.50), (0.18, 0.62)],
        inner=[[(0.26, 0.62), (0.20, 0.62)], [(0.54, 0.53), (0.45, 0.56), (0.37, 0.50)]]),
}
_FAMILY_NAMES = tuple(_SHOE_FAMILIES)
_N_SLOTS = 8
_DETAIL_TYPES = ("none", "buckle", "dots", "stripes", "notch", "ring", "cross", "zigzag")


def _chaikin(pts: np.ndarray, n_iter: int = 3, closed: bool = True) -> np.ndarray:
    for _ in range(n_iter):
        p = pts
        q = np.roll(p, -1, axis=0) if closed else p[1:]
        p0 = p if closed else p[:-1]
        a, b = 0.75 * p0 + 0.25 * q, 0.25 * p0 + 0.75 * q
        inter = np.stack([a, b], axis=1).reshape(-1, 2)
        pts = inter if closed else np.concatenate([p[:1], inter, p[-1:]])
    return pts


def _polygon_mask(poly: np.ndarray, size: int) -> np.ndarray:
    from skimage.draw import polygon as sk_polygon

    m = np.zeros((size, size), bool)
    rr, cc = sk_polygon(poly[:, 1] * size, poly[:, 0] * size, shape=(size, size))
    m[rr, cc] = True
    return m


def _slot_positions(outline: np.ndarray, k: int = _N_SLOTS, margin: float = 0.06) -> np.ndarray:
    """k well-spread interior points of a shape (farthest-point sampling on an eroded mask; deterministic)."""
    from scipy.ndimage import binary_erosion

    res = 96
    m = _polygon_mask(outline, res)
    er = binary_erosion(m, iterations=max(1, int(round(margin * res))))
    if er.sum() < k:
        er = m
    ys, xs = np.nonzero(er)
    pts = np.stack([(xs + 0.5) / res, (ys + 0.5) / res], axis=1)
    c = pts.mean(0)
    chosen = [int(np.argmin(((pts - c) ** 2).sum(1)))]
    d = ((pts - pts[chosen[0]]) ** 2).sum(1)
    for _ in range(k - 1):
        j = int(np.argmax(d))
        chosen.append(j)
        d = np.minimum(d, ((pts - pts[j]) ** 2).sum(1))
    return pts[chosen]


@lru_cache(maxsize=None)
def _shoe_family(name: str) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
    f = _SHOE_FAMILIES[name]
    outline = np.asarray(f["outline"], float)
    inner = tuple(np.asarray(s, float) for s in f["inner"])
    return outline, inner, _slot_positions(_chaikin(outline, 3))


def _radial_family(rng: np.random.Generator) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray]:
    """A random closed shape -- a low-order Fourier blob or a rounded 3-6-gon, random aspect ratio and
    rotation -- plus 1-2 inner strokes: one category-level class."""
    if rng.random() < 0.5:
        n = 18
        th = np.linspace(0, 2 * np.pi, n, endpoint=False)
        r = np.ones(n)
        for k in range(1, 6):
            r += rng.uniform(0.1, 0.45) / k ** 0.5 * np.cos(k * th + rng.uniform(0, 2 * np.pi))
        r = np.clip(r, 0.3 * r.max(), None)
    else:
        n = int(rng.integers(3, 7))
        th = np.sort(rng.uniform(0, 2 * np.pi / n, n) * 0.5 + np.arange(n) * 2 * np.pi / n)
        r = rng.uniform(0.7, 1.0, n)
    asp = rng.uniform(0.55, 1.8)
    rot = rng.uniform(0, 2 * np.pi)
    pts = _rot(np.stack([r * np.cos(th) * asp ** 0.5, r * np.sin(th) / asp ** 0.5], 1), rot)
    pts -= (pts.max(0) + pts.min(0)) / 2
    outline = 0.5 + pts * (0.40 / np.abs(pts).max())
    sm = _chaikin(outline, 3)
    inner = []
    for _ in range(rng.integers(1, 3)):
        i, j = rng.choice(len(sm), 2, replace=False)
        a, b = sm[i], sm[j]
        inner.append(np.stack([a + 0.15 * (b - a), b - 0.15 * (b - a)]))
    return outline, tuple(inner), _slot_positions(sm)


def _circle(c, r, n=10) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n + 1)
    return np.stack([c[0] + r * np.cos(t), c[1] + r * np.sin(t)], 1)


def _rot(pts: np.ndarray, ang: float) -> np.ndarray:
    c, s = math.cos(ang), math.sin(ang)
    return pts @ np.array([[c, s], [-s, c]])


def _detail_strokes(kind: str, c: np.ndarray, s: float, ang: float) -> list[np.ndarray]:
    """Polylines (unit coords) of one small detail centred at c with size s."""
    if kind == "buckle":
        rect = np.array([(-1, -0.6), (1, -0.6), (1, 0.6), (-1, 0.6), (-1, -0.6)]) * s
        bar = np.array([(-0.3, -0.6), (-0.3, 0.6)]) * s
        return [c + _rot(rect, ang * 0.2), c + _rot(bar, ang * 0.2)]
    if kind == "dots":
        return [c + _rot(np.array([[dx * s, 0.0]]), ang)[0] + _circle((0, 0), 0.28 * s, 8) for dx in (-1, 0, 1)]
    if kind == "stripes":
        line = np.array([(-1.0, 0.0), (1.0, 0.0)]) * s
        return [c + _rot(line + np.array([0, dy * s]), ang) for dy in (-0.6, 0.0, 0.6)]
    if kind == "notch":
        return [c + _rot(np.array([(-1.0, -0.5), (0.0, 0.7), (1.0, -0.5)]) * s, ang)]
    if kind == "ring":
        return [c + _circle((0, 0), 0.8 * s, 12), c + _circle((0, 0), 0.3 * s, 8)]
    if kind == "cross":
        return [c + _rot(np.array([(-1.0, -1.0), (1.0, 1.0)]) * 0.8 * s, ang),
                c + _rot(np.array([(-1.0, 1.0), (1.0, -1.0)]) * 0.8 * s, ang)]
    if kind == "zigzag":
        return [c + _rot(np.array([(-1.2, 0.0), (-0.6, -0.5), (0.0, 0.0), (0.6, -0.5), (1.2, 0.0)]) * s, ang)]
    return []


_DISK_CACHE: dict[float, np.ndarray] = {}


def _disk(r: float) -> np.ndarray:
    key = round(float(r), 2)
    if key not in _DISK_CACHE:
        R = int(math.ceil(key))
        dy, dx = np.mgrid[-R:R + 1, -R:R + 1]
        keep = dx * dx + dy * dy <= key * key + 1e-9
        _DISK_CACHE[key] = np.stack([dy[keep], dx[keep]], 1)
    return _DISK_CACHE[key]


def _stroke_pixels(poly: np.ndarray, size: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (row, col) indices covered by a polyline of given pen radius (vectorised rasterisation)."""
    p = poly * size
    if len(p) == 1:
        pts = p
    else:
        d = p[1:] - p[:-1]
        n = np.maximum(1, np.ceil(np.hypot(d[:, 0], d[:, 1]) / 0.7).astype(int))
        seg = np.repeat(np.arange(len(d)), n)
        start = np.repeat(np.cumsum(n) - n, n)
        t = (np.arange(seg.size) - start) / np.repeat(n, n)
        pts = np.concatenate([p[:-1][seg] + t[:, None] * d[seg], p[-1:]])
    ij = np.round(pts[:, ::-1]).astype(np.int64)
    ij = (ij[:, None, :] + _disk(radius)[None]).reshape(-1, 2)
    ok = (ij[:, 0] >= 0) & (ij[:, 0] < size) & (ij[:, 1] >= 0) & (ij[:, 1] < size)
    return ij[ok, 0], ij[ok, 1]


def _draw(canvas: np.ndarray, poly: np.ndarray, radius: float, ink) -> None:
    size = canvas.shape[0]
    rr, cc = _stroke_pixels(poly, size, radius * size / 256.0)
    if canvas.ndim == 2:
        canvas[rr, cc] = np.minimum(canvas[rr, cc], np.uint8(ink))
    else:
        canvas[rr, cc] = np.asarray(ink, np.uint8)


def _affine(pts: np.ndarray, A: np.ndarray, t: np.ndarray, centre=(0.5, 0.5)) -> np.ndarray:
    c = np.asarray(centre)
    return (pts - c) @ A.T + c + t


def _wobble(poly: np.ndarray, rng: np.random.Generator, amp: float, step: float = 0.025) -> np.ndarray:
    """Resample a polyline to ~step spacing and add smooth random displacement (hand-drawn wobble)."""
    d = np.diff(poly, axis=0)
    L = np.concatenate([[0], np.cumsum(np.hypot(d[:, 0], d[:, 1]))])
    if L[-1] <= 0:
        return poly
    m = max(2, int(L[-1] / step) + 1)
    s = np.linspace(0, L[-1], m)
    q = np.stack([np.interp(s, L, poly[:, 0]), np.interp(s, L, poly[:, 1])], 1)
    noise = rng.normal(0, amp, q.shape)
    k = np.array([0.25, 0.5, 0.25])
    for _ in range(2):
        noise = np.stack([np.convolve(np.pad(noise[:, j], 1, mode="edge"), k, "valid") for j in range(2)], 1)
    return q + noise


@dataclass
class _Instance:
    outline: np.ndarray  # smoothed closed contour (unit coords)
    inner: list[np.ndarray]
    details: list[tuple[int, str, np.ndarray, float, float]]  # (slot, kind, centre, size, angle)
    attrs: np.ndarray  # detail type per slot (0 = none)
    family: int
    color: tuple[float, float, float]


def _make_instance(rng: np.random.Generator, family: int, fam, p_none: float = 0.35) -> _Instance:
    outline, inner, slots = fam
    sx, sy = rng.uniform(0.93, 1.06), rng.uniform(0.93, 1.06)
    A = np.diag([sx, sy])
    ctrl = outline + rng.normal(0, 0.007, outline.shape)
    smooth = _affine(_chaikin(ctrl, 3), A, np.zeros(2))
    inner_t = [_affine(s + rng.normal(0, 0.004, s.shape), A, np.zeros(2)) for s in inner]
    attrs = np.where(rng.random(len(slots)) < p_none, 0, rng.integers(1, len(_DETAIL_TYPES), len(slots)))
    details = []
    for k, (pos, t) in enumerate(zip(slots, attrs)):
        c = _affine(pos + rng.normal(0, 0.012, 2), A, np.zeros(2))
        details.append((k, _DETAIL_TYPES[t], c, float(rng.uniform(0.026, 0.04)), float(rng.uniform(0, np.pi))))
    h = rng.random()
    color = colorsys.hsv_to_rgb(h, rng.uniform(0.35, 0.8), rng.uniform(0.45, 0.9))
    return _Instance(smooth, inner_t, details, attrs.astype(np.int64), family, color)


def _render_edge(inst: _Instance, rng: np.random.Generator, size: int) -> np.ndarray:
    """Clean contour + all details at the true position, thin lines, plus texture/background clutter."""
    img = np.full((size, size), 255, np.uint8)
    closed = np.concatenate([inst.outline, inst.outline[:1]])
    _draw(img, closed, 0.6, rng.integers(20, 70))
    for s in inst.inner:
        _draw(img, s, 0.6, rng.integers(40, 110))
    for _, kind, c, sz, ang in inst.details:
        for s in _detail_strokes(kind, c, sz, ang):
            _draw(img, s, 0.6, rng.integers(30, 100))
    # clutter: short fragments inside the object (texture, shading edges) and a few outside
    mask = _polygon_mask(inst.outline, 64)
    ys, xs = np.nonzero(mask)
    n_in = int(rng.integers(12, 36))
    if len(ys):
        pick = rng.integers(0, len(ys), n_in)
        for y, x in zip(ys[pick], xs[pick]):
            p = np.array([(x + rng.random()) / 64, (y + rng.random()) / 64])
            a, L = rng.uniform(0, np.pi), rng.uniform(0.008, 0.035)
            seg = p + np.array([[-1.0], [1.0]]) * L * np.array([math.cos(a), math.sin(a)])
            _draw(img, seg, 0.5, rng.integers(110, 210))
    for _ in range(int(rng.integers(0, 4))):
        p = rng.uniform(0.05, 0.95, 2)
        a, L = rng.uniform(0, np.pi), rng.uniform(0.01, 0.04)
        _draw(img, p + np.array([[-1.0], [1.0]]) * L * np.array([math.cos(a), math.sin(a)]), 0.5,
              rng.integers(150, 230))
    return img


def _render_sketch(inst: _Instance, rng: np.random.Generator, size: int, p_omit: float = 0.25) -> np.ndarray:
    """Abstracted drawing: global shift/scale/rotation, wobbly broken strokes, thick variable lines,
    some details omitted or displaced."""
    img = np.full((size, size), 255, np.uint8)
    ang = math.radians(rng.uniform(-5, 5))
    sc = rng.uniform(0.9, 1.1) * np.array([1 + rng.uniform(-0.05, 0.05), 1 + rng.uniform(-0.05, 0.05)])
    A = np.array([[math.cos(ang), -math.sin(ang)], [math.sin(ang), math.cos(ang)]]) @ np.diag(sc)
    t = rng.normal(0, 0.03, 2).clip(-0.06, 0.06)
    tf = lambda p: _affine(p, A, t)  # noqa: E731

    # outline as 2-4 strokes with small gaps/overlaps, each slightly misaligned
    pts = inst.outline
    n = len(pts)
    n_str = int(rng.integers(2, 5))
    cuts = np.sort(rng.choice(n, n_str, replace=False))
    for i in range(n_str):
        a = cuts[i] + int(rng.integers(-2, 3))
        b = (cuts[(i + 1) % n_str] if i + 1 < n_str else cuts[0] + n) + int(rng.integers(-2, 3))
        idx = np.arange(a, max(b, a + 2)) % n
        s = _wobble(pts[idx], rng, 0.004) + rng.normal(0, 0.006, 2)
        _draw(img, tf(s), rng.choice([1.0, 1.5, 2.0]), rng.integers(0, 60))
    for s in inst.inner:
        if rng.random() < 0.75:
            _draw(img, tf(_wobble(s, rng, 0.004) + rng.normal(0, 0.008, 2)), rng.choice([1.0, 1.5]),
                  rng.integers(0, 80))
    for _, kind, c, sz, dang in inst.details:
        if kind == "none" or rng.random() < p_omit:
            continue
        off = rng.normal(0, 0.012, 2)
        for s in _detail_strokes(kind, c + off, sz * rng.uniform(0.85, 1.2), dang + rng.normal(0, 0.15)):
            _draw(img, tf(_wobble(s, rng, 0.002, step=0.01)), rng.choice([1.0, 1.5]), rng.integers(0, 80))
    return img


def _render_photo(inst: _Instance, size: int) -> np.ndarray:
    img = np.full((size, size, 3), 255, np.uint8)
    col = np.asarray(inst.color)
    m = _polygon_mask(inst.outline, size)
    shade = np.linspace(1.08, 0.85, size)[:, None, None]  # soft top-down lighting
    img[m] = np.clip(col[None] * 255 * shade.repeat(size, 1)[m], 0, 255).astype(np.uint8)
    dark = tuple(int(v) for v in np.clip(col * 255 * 0.45, 0, 255))
    for s in inst.inner:
        _draw(img, s, 1.0, dark)
    for _, kind, c, sz, ang in inst.details:
        accent = tuple(int(v) for v in np.clip((1 - col) * 255 * 0.9, 0, 255))
        for s in _detail_strokes(kind, c, sz, ang):
            _draw(img, s, 1.2, accent)
    _draw(img, np.concatenate([inst.outline, inst.outline[:1]]), 0.8, (40, 40, 40))
    return img


def _similarity(attrs: np.ndarray, family: np.ndarray) -> np.ndarray:
    """Known instance similarity: 2 x (same shape family) + number of detail slots with the same detail
    (the same detail type, or both empty). The diagonal is +inf (an instance is most similar to itself)."""
    sim = (attrs[:, None, :] == attrs[None, :, :]).sum(-1).astype(float)
    sim += 2.0 * (family[:, None] == family[None, :])
    np.fill_diagonal(sim, np.inf)
    return sim


def _make_triplets(attrs: np.ndarray, family: np.ndarray, rng: np.random.Generator, n_per_query: int,
                   n_cand: int = 10, n_near: int = 4) -> list[list[tuple[int, int]]]:
    """QMUL-style annotation: per query, 10 candidate photos (the true match, its 4 nearest and 5 random
    others); every ordered pair (a, b) with sim(q, a) > sim(q, b) is a (more, less similar) triplet; keep a
    random ``n_per_query`` of them."""
    n = len(attrs)
    sim = _similarity(attrs, family)
    out = []
    for q in range(n):
        others = np.array([j for j in range(n) if j != q])
        if len(others) == 0:
            out.append([])
            continue
        s = sim[q, others] + rng.random(len(others)) * 1e-3  # random tie-break
        near = others[np.argsort(-s)[:n_near]]
        rest = np.setdiff1d(others, near)
        k = min(len(rest), n_cand - 1 - len(near))
        cand = np.concatenate([[q], near, rng.choice(rest, k, replace=False) if k > 0 else []]).astype(int)
        pairs = [(int(a), int(b)) for a in cand for b in cand if a != b and sim[q, a] > sim[q, b]]
        if len(pairs) > n_per_query:
            sel = rng.choice(len(pairs), n_per_query, replace=False)
            pairs = [pairs[i] for i in sorted(sel)]
        out.append(pairs)
    return out


def make_synthetic(n_train: int = 64, n_test: int = 32, size: int = 256, seed: int = 0,
                   n_triplets_per_query: int = 20, with_triplets: bool = True) -> QMULDataset:
    """A small fine-grained dataset of procedurally drawn shoe-like objects, deterministic by ``seed``.

    Each instance = one of 3 coarse shape families (sneaker, boot, pump) with small proportion changes, plus
    8 detail slots, each empty or holding a buckle / dots / stripes / notch / ring / cross / zigzag at an
    instance-specific position, size and angle. Per instance:

    - ``edges``: the clean contour and all details at the true position (thin lines) plus clutter
      (short texture fragments inside the object, a few outside) -- the photo-side input;
    - ``sketches``: an abstraction -- global shift/scale/rotation (a few degrees), wobbly contour broken
      into 2-4 misaligned strokes, thick variable lines, each detail omitted with probability 0.25;
    - ``photos``: flat-colour RGB renderings (for display);
    - ``triplets`` (if ``with_triplets``): per query, QMUL-style (more, less similar) pairs from the known
      similarity (same family + shared details), see :func:`_make_triplets`; indices within the split.

    White background (255), dark strokes, uint8.
    """
    if n_train < 2 or n_test < 2:
        raise ValueError("need at least 2 train and 2 test instances")
    rng = np.random.default_rng(seed)
    fams = [_shoe_family(f) for f in _FAMILY_NAMES]
    splits = {}
    start = 1
    for split, n in (("train", n_train), ("test", n_test)):
        srng = np.random.default_rng(rng.integers(2 ** 63))
        fam_ids = srng.integers(0, len(fams), n)
        insts = [_make_instance(srng, int(f), fams[f]) for f in fam_ids]
        sk = np.stack([_render_sketch(i, srng, size) for i in insts])
        ed = np.stack([_render_edge(i, srng, size) for i in insts])
        ph = np.stack([_render_photo(i, size) for i in insts])
        trip = None
        if with_triplets:
            trip = _make_triplets(np.stack([i.attrs for i in insts]), fam_ids, srng, n_triplets_per_query)
        splits[split] = QMULSplit(torch.from_numpy(sk), torch.from_numpy(ed), torch.from_numpy(ph), trip,
                                  [str(start + i) for i in range(n)])
        start += n
    return QMULDataset("synthetic", splits["train"], splits["test"], f"synthetic(seed={seed})")


def make_synthetic_categories(n_classes: int = 10, per_class: int = 20, n_test_per_class: int = 5,
                              photos_per_class: int = 10, size: int = 256, seed: int = 0) -> CategoryDataset:
    """Category-level synthetic SBIR: class = a random closed shape family (+ inner strokes), drawn with
    the same renderers as :func:`make_synthetic`. Each class has ``photos_per_class`` instances (gallery
    photos, RGB); every sketch is drawn from a random instance of its class (as Sketchy's sketches are
    drawn from photos). Deterministic by ``seed``."""
    if n_classes < 2:
        raise ValueError("need at least 2 classes")
    rng = np.random.default_rng(seed)
    fams = [_radial_family(np.random.default_rng(rng.integers(2 ** 63))) for _ in range(n_classes)]
    tr, te, trl, tel, ph, phl, trn, ten, phn = [], [], [], [], [], [], [], [], []
    for c, fam in enumerate(fams):
        insts = [_make_instance(rng, c, fam, p_none=0.5) for _ in range(photos_per_class)]
        for j, inst in enumerate(insts):
            ph.append(_render_photo(inst, size))
            phl.append(c)
            phn.append(f"class{c:02d}/{j}")
        src = rng.integers(0, photos_per_class, per_class + n_test_per_class)
        for k, j in enumerate(src):
            img = _render_sketch(insts[j], rng, size)
            (tr if k < per_class else te).append(img)
            (trl if k < per_class else tel).append(c)
            (trn if k < per_class else ten).append(f"class{c:02d}/{j}-{k}")
    stack = lambda a, shp: torch.from_numpy(np.stack(a)) if a else torch.zeros(shp, dtype=torch.uint8)  # noqa: E731
    return CategoryDataset(
        name="synthetic_categories", categories=[f"class{c:02d}" for c in range(n_classes)],
        train_sketches=stack(tr, (0, size, size)), train_labels=torch.tensor(trl, dtype=torch.int64),
        test_sketches=stack(te, (0, size, size)), test_labels=torch.tensor(tel, dtype=torch.int64),
        photos=stack(ph, (0, size, size, 3)), photo_labels=torch.tensor(phl, dtype=torch.int64),
        source=f"synthetic(seed={seed})",
        split=f"per class: {per_class} train and {n_test_per_class} test sketches generated; all photos are the gallery",
        train_names=trn, test_names=ten, photo_names=phn)


# ----------------------------------------------------------------------------------------------------------
# Real data when present, else the stand-in
# ----------------------------------------------------------------------------------------------------------
def load_fg_dataset(name: str, root=None, allow_synthetic: bool = True, synthetic_kwargs: dict | None = None,
                    photos: bool | str = "auto") -> QMULDataset:
    """Real QMUL-V1 data when its files are under the data root, else (if allowed) synthetic data.

    ``name``: ``shoes`` | ``chairs`` | ``handbags`` | ``synthetic``. The fallback warns (``warnings.warn``
    and the log) that the data are synthetic and which command fetches the real set; its ``name`` is
    ``"synthetic"`` and ``source`` ``"synthetic(seed=..)"`` so results are never mislabelled. For a
    handbags fallback the synthetic set has no triplets (true-match sampling, like real handbags).
    Damaged real files raise :class:`~sbir_lib.data.datasets.DatasetCorruptError` rather than silently
    falling back.
    """
    kw = dict(synthetic_kwargs or {})
    if name == "synthetic":
        return make_synthetic(**kw)
    if name not in QMUL_NAMES:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(QMUL_NAMES + ('synthetic',))}")
    if not allow_synthetic or real_data_available(name, root):
        return load_qmul(name, root=root, photos=photos)  # absent: DatasetMissingError naming the command
    if name not in QMUL_ANNOTATED:
        kw.setdefault("with_triplets", False)
    ds = make_synthetic(**kw)
    msg = (f"QMUL {name} not found under {qmul_dir(name, root)}: using SYNTHETIC data ({ds.source}), not the "
           f"real benchmark. Fetch the real data with: {config.download_command('qmul-' + name)}")
    warnings.warn(msg, stacklevel=2)
    logger.warning(msg)
    return ds
