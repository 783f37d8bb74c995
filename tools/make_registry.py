#!/usr/bin/env python
"""Generate ``sbir_lib/data/registry/*.json`` (the dataset registry) from a local data mirror.

The registry is what ``sbir_lib.data.download`` (and ``data_download.py``) trust: every file's
relative path under the data root, its upstream URL (or null), its size in bytes and its
SHA-256. It is generated once from the mirror's ``SHA256SUMS`` files plus the real file
sizes, reviewed, and committed; the download code never computes it on the fly.

Usage (from the repository root)::

    python tools/make_registry.py                # mirror: $SBIR_DATA_MIRROR or ../shared/data
    python tools/make_registry.py --mirror /path/to/mirror --rehash  # also re-hash files
    python tools/make_registry.py --check        # compare with the committed files only

A mirror has the same layout as a data root: ``qmul_v1/<dataset>/...`` with
``qmul_v1/SHA256SUMS`` and ``sketchy_mini/{photo,sketch}/...`` with ``sketchy_mini/SHA256SUMS``.
The two "manual" datasets (full Sketchy, TU-Berlin) have no files in the mirror; their
instructions and structural checks are defined below and written to the registry as well.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sbir_lib.core.io import write_bytes_atomic  # noqa: E402

REGISTRY_DIR = REPO / "sbir_lib" / "data" / "registry"
FORMAT = 1

# Upstream locations (see the mirror's qmul_v1/README.md).
DSSA_RAW = ("https://raw.githubusercontent.com/yuqian1023/Deep_SBIR_tf/"
            "838c17c9a1447e1634f1bfa220e2ecc71030d4b5/data/{dataset}/{file}")
PHOTOS_RAW = ("https://raw.githubusercontent.com/lyd911/Deep_SBIR_tf/"
              "c157a490e14b9080acd5f08e69986c0230b3aec8/data/{dataset}/{split}/images/{file}")

QMUL_CITATION = ("Yu, Liu, Song, Xiang, Hospedales, Loy. Sketch Me That Shoe. CVPR 2016; "
                 "Song, Yu, Song, Xiang, Hospedales. Deep Spatial-Semantic Attention for "
                 "Fine-Grained Sketch-Based Image Retrieval (DSSA). ICCV 2017")
QMUL_SOURCE = ("GitHub: yuqian1023/Deep_SBIR_tf@838c17c (.mat, .json), "
               "lyd911/Deep_SBIR_tf@c157a49 (photos)")

QMUL = {
    "qmul-shoes": dict(
        title="QMUL-Shoe V1 (fine-grained SBIR): 304 train / 115 test sketch-photo pairs",
        notes=["photos/<split>/<n>.jpg are the RGB photos; the papers feed the edge maps "
               "(<ds>_edge_db_<split>.mat) to the network"]),
    "qmul-chairs": dict(
        title="QMUL-Chair V1 (fine-grained SBIR): 200 train / 97 test sketch-photo pairs",
        notes=[]),
    "qmul-handbags": dict(
        title="QMUL-Handbag V1 (fine-grained SBIR): 400 train / 168 test sketch-photo pairs",
        notes=["no RGB photos upstream",
               "handbags_annotation.json is byte-identical to shoes_annotation.json (an upstream "
               "mistake); it is listed for completeness but must not be used for handbags"]),
}

SKETCHY_MINI = dict(
    title="Sketchy-mini: 125 categories x 25 photos + 25 sketches from The Sketchy Database",
    citation=("Sangkloy, Burnell, Ham, Hays. The Sketchy Database: Learning to Retrieve Badly "
              "Drawn Bunnies. SIGGRAPH 2016"),
    source="mirror only (no public upstream)",
    notes=["no public upstream: obtainable only from a mirror (--mirror DIR_OR_URL)",
           "subset recovered from the git history of GitHub sahibgoa/DCGAN-MNIST@ee2a0a3"],
)

MANUAL = {
    "sketchy": dict(
        title="The Sketchy Database, full release (rendered 256x256): 125 categories",
        citation=SKETCHY_MINI["citation"],
        source="manual: Google Drive (rendered_256x256.7z)",
        manual=dict(
            homepage="https://sketchy.eye.gatech.edu/",
            url="https://drive.google.com/file/d/0B7ISyeE8QtDdTjE1MG9Gcy1kSkE/view",
            archive="rendered_256x256.7z",
            steps=[
                "Open {url} in a browser (the official link on {homepage}) and download "
                "{archive}. Google Drive asks for a confirmation click, so a script cannot "
                "fetch it reliably.",
                "Unpack it into the data root (7z is in the p7zip package: "
                "apt install p7zip-full, or brew install p7zip):\n"
                "    mkdir -p {root}/sketchy && 7z x {archive} -o{root}/sketchy",
                "The archive's top folder is 256x256/, so you should now have "
                "{root}/sketchy/256x256/sketch/tx_000000000000/ and "
                "{root}/sketchy/256x256/photo/tx_000000000000/ (the other tx_* folders are "
                "other augmentations and are not used).",
            ],
            structure=[
                dict(what="sketches", dir="sketchy/256x256/sketch/tx_000000000000",
                     suffix=".png", categories=125, files=75471),
                dict(what="photos", dir="sketchy/256x256/photo/tx_000000000000",
                     suffix=".jpg", categories=125, files=12500),
            ],
        ),
    ),
    "tuberlin": dict(
        title="TU-Berlin sketch dataset: 250 categories x 80 sketches (PNG)",
        citation="Eitz, Hays, Alexa. How Do Humans Sketch Objects? SIGGRAPH 2012",
        source="manual: HTTP (sketches_png.zip)",
        manual=dict(
            homepage="http://cybertron.cg.tu-berlin.de/eitz/projects/classifysketch/",
            url="http://cybertron.cg.tu-berlin.de/eitz/projects/classifysketch/sketches_png.zip",
            archive="sketches_png.zip",
            steps=[
                "Download {archive} (no published checksum; it is checked by structure "
                "below):\n    wget {url}\n    (or: curl -L -O {url})",
                "Unpack it into the data root:\n"
                "    mkdir -p {root}/tuberlin && unzip -q {archive} -d {root}/tuberlin",
                "The archive's top folder is png/, so you should now have "
                "{root}/tuberlin/png/<category>/<n>.png.",
            ],
            structure=[
                dict(what="sketches", dir="tuberlin/png", suffix=".png",
                     categories=250, files=20000),
            ],
        ),
    ),
}


def read_sums(path: Path) -> list[tuple[str, str]]:
    """Parse a ``sha256sum`` file into ``(relative_path, sha256)`` pairs (``./`` stripped)."""
    out = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        sha, name = line.split(maxsplit=1)
        name = name.lstrip("*")
        if name.startswith("./"):
            name = name[2:]
        out.append((name, sha.lower()))
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def qmul_url(rel: str) -> str:
    """Upstream URL for ``<dataset>/<file>`` or ``<dataset>/photos/<split>/<n>.jpg``."""
    parts = rel.split("/")
    if len(parts) == 2:
        return DSSA_RAW.format(dataset=parts[0], file=parts[1])
    if len(parts) == 4 and parts[1] == "photos":
        return PHOTOS_RAW.format(dataset=parts[0], split=parts[2], file=parts[3])
    raise ValueError(f"no upstream URL pattern for qmul_v1/{rel}")


def _entries(mirror: Path, top: str, sums: list[tuple[str, str]], url_of, rehash: bool):
    files = []
    for rel, sha in sums:
        path = mirror / top / rel
        entry = {"path": f"{top}/{rel}", "url": url_of(rel), "size": path.stat().st_size,
                 "sha256": sha}
        if rehash and sha256_file(path) != sha:
            raise SystemExit(f"{path}: hash differs from {top}/SHA256SUMS")
        files.append(entry)
    listed = {rel for rel, _ in sums}
    return files, listed


def _unlisted(mirror: Path, top: str, listed: set[str], under: str = "") -> list[str]:
    base = mirror / top
    extra = []
    for dirpath, _, names in os.walk(base / under):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), base).replace(os.sep, "/")
            if rel not in listed and rel not in ("README.md", "SHA256SUMS"):
                extra.append(f"{top}/{rel}")
    return extra


def build(mirror: Path, rehash: bool = False) -> dict[str, dict]:
    """The registry as ``{name: dataset dict}``, in display order."""
    datasets: dict[str, dict] = {}
    order = 1
    qsums = read_sums(mirror / "qmul_v1" / "SHA256SUMS")
    for name, meta in QMUL.items():
        ds = name.split("-", 1)[1]
        sub = sorted((r, s) for r, s in qsums if r.startswith(ds + "/"))
        files, listed = _entries(mirror, "qmul_v1", sub, qmul_url, rehash)
        extra = _unlisted(mirror, "qmul_v1", listed, ds)
        if extra:
            raise SystemExit(f"files in the mirror but not in qmul_v1/SHA256SUMS: {extra[:5]}")
        datasets[name] = dict(format=FORMAT, name=name, order=order, kind="files",
                              title=meta["title"], citation=QMUL_CITATION, source=QMUL_SOURCE,
                              notes=meta["notes"], files=files)
        order += 1
    ssums = sorted(read_sums(mirror / "sketchy_mini" / "SHA256SUMS"))
    files, listed = _entries(mirror, "sketchy_mini", ssums, lambda rel: None, rehash)
    extra = _unlisted(mirror, "sketchy_mini", listed)
    if extra:
        raise SystemExit(f"files in the mirror but not in sketchy_mini/SHA256SUMS: {extra[:5]}")
    datasets["sketchy-mini"] = dict(format=FORMAT, name="sketchy-mini", order=order, kind="files",
                                    **SKETCHY_MINI, files=files)
    order += 1
    for name, meta in MANUAL.items():
        datasets[name] = dict(format=FORMAT, name=name, order=order, kind="manual",
                              title=meta["title"], citation=meta["citation"],
                              source=meta["source"], notes=[], manual=meta["manual"])
        order += 1
    return datasets


def render(ds: dict) -> str:
    """Indented JSON with one file entry per line (small, reviewable diffs)."""
    head = {k: v for k, v in ds.items() if k != "files"}
    text = json.dumps(head, indent=2)
    if "files" not in ds:
        return text + "\n"
    rows = ",\n".join("    " + json.dumps(f) for f in ds["files"])
    return text[:-2] + ',\n  "files": [\n' + rows + "\n  ]\n}\n"


def default_mirror() -> Path:
    env = os.environ.get("SBIR_DATA_MIRROR")
    return Path(env) if env else REPO.parent / "shared" / "data"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mirror", type=Path, default=None,
                   help="local mirror folder (default: $SBIR_DATA_MIRROR or <repo>/../shared/data)")
    p.add_argument("--out", type=Path, default=REGISTRY_DIR, help="registry folder to write")
    p.add_argument("--rehash", action="store_true", help="re-hash every file against SHA256SUMS")
    p.add_argument("--check", action="store_true",
                   help="compare with the files in --out instead of writing; exit 1 if they differ")
    args = p.parse_args(argv)
    mirror = args.mirror or default_mirror()
    if not (mirror / "qmul_v1" / "SHA256SUMS").is_file():
        p.error(f"{mirror} does not look like a data mirror (no qmul_v1/SHA256SUMS)")
    datasets = build(mirror, rehash=args.rehash)
    stale = []
    for name, ds in datasets.items():
        path = args.out / f"{name}.json"
        text = render(ds)
        assert json.loads(text) == ds
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(name)
            continue
        write_bytes_atomic(path, text.encode())
        os.chmod(path, 0o644)  # the atomic temp file is created 0600
        shown = path.relative_to(REPO) if path.resolve().is_relative_to(REPO) else path
        files = ds.get("files", [])
        what = f"{len(files)} files, {sum(f['size'] for f in files):,} bytes" if files else "manual"
        print(f"wrote {shown}: {what}")
    if args.check:
        if stale:
            print("registry differs from the mirror for: " + ", ".join(stale))
            return 1
        print("registry matches the mirror")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
