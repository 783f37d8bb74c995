"""Tests for ``sbir_lib.data.download`` (``data_download.py``) and ``sbir_lib.data.registry``: no real network.

A tiny fixture mirror is served by a real HTTP server on 127.0.0.1 (Range support, a transfer
that breaks off once, a server that ignores ranges) and used as a folder mirror; the registry
is injected. The ``realdata`` test checks the committed registry against the shared mirror.
"""
from __future__ import annotations

import dataclasses
import hashlib
import http.server
import os
import random
import re
import socket
import threading
import urllib.parse
from pathlib import Path

import pytest

from sbir_lib.data import download as dl
from sbir_lib.data import registry as R
from sbir_lib.data.registry import DatasetSpec, FileEntry, StructureCheck

REPO = Path(__file__).resolve().parent.parent


def _bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# The fixture mirror: "toy" is intact, "toy-bad" is served with flipped bytes.
GOOD = {
    "toy/a.bin": _bytes(300_000, 1),
    "toy/sub/b.txt": b"hello sketch\n" * 50,
    "toy/sub/c.bin": _bytes(5_000, 2),
}
BAD_PATH = "toy_bad/corrupt.bin"
BAD_ORIGINAL = _bytes(40_000, 3)
BAD_SERVED = bytes([BAD_ORIGINAL[0] ^ 0xFF]) + BAD_ORIGINAL[1:]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _spec(name: str, files: dict[str, bytes], url_base: str | None) -> DatasetSpec:
    entries = tuple(FileEntry(p, None if url_base is None else url_base + p, len(b), _sha(b))
                    for p, b in files.items())
    return DatasetSpec(name=name, kind="files", title=f"{name} fixture", source="test",
                       files=entries)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        rng = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((rel, rng))
        path = srv.directory / rel
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and srv.ranges:
            start = int(m.group(1))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        with srv.lock:
            broken = rel in srv.break_once
            srv.break_once.discard(rel)
        if broken:  # promise the full length, send half, hang up
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path):
    """The fixture mirror folder (same layout as a data root)."""
    root = tmp_path / "mirror"
    for rel, data in {**GOOD, BAD_PATH: BAD_SERVED}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


@pytest.fixture
def server(mirror):
    """A real HTTP server for the mirror: ``.url``, ``.requests``, ``.break_once``, ``.ranges``."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.directory, srv.requests, srv.break_once, srv.ranges = mirror, [], set(), True
    srv.lock = threading.Lock()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def registry(server):
    """Upstream URLs pointing at the fixture server."""
    return {"toy": _spec("toy", GOOD, server.url),
            "toy-bad": _spec("toy-bad", {BAD_PATH: BAD_ORIGINAL}, server.url)}


@pytest.fixture(autouse=True)
def _no_env_mirror(monkeypatch):
    monkeypatch.delenv("SBIR_DATA_MIRROR", raising=False)


def _files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# --------------------------------------------------------------------------- HTTP


def test_download_and_verify(tmp_path, registry, server):
    root = tmp_path / "data"
    assert dl.download(["toy"], root=root, registry=registry, progress=False) == 0
    for rel, data in GOOD.items():
        assert (root / rel).read_bytes() == data
    assert dl.verify(["toy"], root=root, registry=registry) == []
    assert not list(root.rglob("*.part"))
    assert (root / dl.CACHE_NAME).is_file()
    assert all(r is None for _, r in server.requests)  # no Range on a fresh download


def test_rerun_makes_no_requests(tmp_path, registry, server, capsys):
    root = tmp_path / "data"
    assert dl.download("toy", root=root, registry=registry, progress=False) == 0
    server.requests.clear()
    assert dl.download("toy", root=root, registry=registry, progress=False) == 0
    assert server.requests == []
    assert "all 3 files present and verified" in capsys.readouterr().out
    (root / dl.CACHE_NAME).unlink()  # without the cache the files are re-hashed, still no requests
    assert dl.download("toy", root=root, registry=registry, progress=False) == 0
    assert server.requests == []


def test_corrupted_file_is_refused(tmp_path, registry, capsys):
    root = tmp_path / "data"
    rc = dl.download(["toy-bad"], root=root, registry=registry, progress=False)
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc != 0
    assert BAD_PATH in text
    assert _sha(BAD_ORIGINAL) in text and _sha(BAD_SERVED) in text
    assert [f for f in _files_under(root) if f != dl.CACHE_NAME] == []  # no file, no .part


def test_broken_transfer_resumes_with_range(tmp_path, registry, server, capsys):
    root = tmp_path / "data"
    rel = "toy/a.bin"
    server.break_once.add(rel)
    assert dl.download("toy", root=root, registry=registry, progress=False) != 0
    text = "".join(capsys.readouterr())
    assert "network failure" in text and "--mirror" in text
    part = root / (rel + ".part")
    half = len(GOOD[rel]) // 2
    assert part.stat().st_size == half
    assert not (root / rel).exists()
    assert any(rel in p and "interrupted download" in p
               for p in dl.verify("toy", root=root, registry=registry))

    server.requests.clear()
    assert dl.download("toy", root=root, registry=registry, progress=False) == 0
    assert (rel, f"bytes={half}-") in server.requests
    assert (root / rel).read_bytes() == GOOD[rel]
    assert not part.exists()
    assert dl.verify("toy", root=root, registry=registry) == []


def test_resume_restarts_when_server_ignores_ranges(tmp_path, registry, server):
    root = tmp_path / "data"
    rel = "toy/a.bin"
    server.ranges = False
    server.break_once.add(rel)
    assert dl.download("toy", root=root, registry=registry, progress=False) != 0
    assert (root / (rel + ".part")).exists()
    assert dl.download("toy", root=root, registry=registry, progress=False) == 0
    assert any(r is not None for p, r in server.requests if p == rel)  # it asked, got 200
    assert (root / rel).read_bytes() == GOOD[rel]
    assert not list(root.rglob("*.part"))


def test_connection_refused_is_a_clear_network_failure(tmp_path, capsys):
    reg = {"toy": _spec("toy", GOOD, f"http://127.0.0.1:{_closed_port()}/")}
    root = tmp_path / "data"
    assert dl.download("toy", root=root, registry=reg, progress=False) != 0
    text = "".join(capsys.readouterr())
    assert "network failure" in text and "--mirror" in text
    assert [f for f in _files_under(root) if f != dl.CACHE_NAME] == []


def test_http_mirror_base_url(tmp_path, server, capsys):
    reg = {"toy": _spec("toy", GOOD, None)}  # no upstream: only the mirror can serve it
    root = tmp_path / "data"
    rc = dl.main(["--dataset", "toy", "--root", str(root), "--mirror", server.url.rstrip("/"),
                  "--no-progress"], registry=reg)
    assert rc == 0
    assert {p for p, _ in server.requests} == set(GOOD)
    assert dl.verify("toy", root=root, registry=reg) == []


# --------------------------------------------------------------------------- folder mirror


def test_folder_mirror(tmp_path, mirror, monkeypatch):
    reg = {"toy": _spec("toy", GOOD, f"http://127.0.0.1:{_closed_port()}/")}  # upstream unusable
    root = tmp_path / "data"
    assert dl.main(["--dataset", "toy", "--root", str(root), "--mirror", str(mirror),
                    "--no-progress"], registry=reg) == 0
    assert dl.verify(["toy"], root=root, registry=reg) == []
    # $SBIR_DATA_MIRROR works as well, and corrupted mirror files are refused the same way
    monkeypatch.setenv("SBIR_DATA_MIRROR", str(mirror))
    bad = {"toy-bad": _spec("toy-bad", {BAD_PATH: BAD_ORIGINAL}, None)}
    assert dl.download("toy-bad", root=root, registry=bad, progress=False) != 0
    assert not (root / BAD_PATH).exists() and not (root / (BAD_PATH + ".part")).exists()


def test_all_means_the_downloadable_datasets(tmp_path, mirror, capsys):
    reg = {"toy": _spec("toy", GOOD, None), **_small_sketchy()}
    root = tmp_path / "data"
    assert dl.main(["--all", "--root", str(root), "--mirror", str(mirror), "--no-progress"],
                   registry=reg) == 0
    out = "".join(capsys.readouterr())
    assert "toy" in out and "sketchy" not in out  # manual datasets only by name
    assert dl.main(["--verify", "--root", str(root)], registry=reg) == 0  # --verify alone: --all


def test_folder_mirror_missing_file(tmp_path, mirror, capsys):
    files = {**GOOD, "toy/not_in_mirror.bin": b"x" * 10}
    reg = {"toy": _spec("toy", files, None)}
    root = tmp_path / "data"
    assert dl.download("toy", root=root, mirror=mirror, registry=reg, progress=False) != 0
    text = "".join(capsys.readouterr())
    assert "toy/not_in_mirror.bin" in text and "mirror lacks" in text
    assert not list(root.rglob("*.part"))
    assert (root / "toy/a.bin").is_file()  # the others still arrive


# --------------------------------------------------------------------------- verify


def test_verify_names_truncated_modified_and_missing(tmp_path, mirror, capsys):
    reg = {"toy": _spec("toy", GOOD, None)}
    root = tmp_path / "data"
    assert dl.download("toy", root=root, mirror=mirror, registry=reg, progress=False) == 0
    with open(root / "toy/a.bin", "r+b") as fh:  # truncated
        fh.truncate(1000)
    data = bytearray(GOOD["toy/sub/c.bin"])  # modified, same size
    data[100] ^= 1
    (root / "toy/sub/c.bin").write_bytes(bytes(data))
    (root / "toy/sub/b.txt").unlink()  # missing

    problems = dl.verify("toy", root=root, registry=reg)
    text = "\n".join(problems)
    assert len(problems) == 3
    assert "toy/a.bin" in text and "wrong size" in text
    assert "toy/sub/c.bin" in text and "checksum mismatch" in text
    assert _sha(bytes(data)) in text and _sha(GOOD["toy/sub/c.bin"]) in text
    assert "missing: toy/sub/b.txt" in text

    capsys.readouterr()
    assert dl.main(["--verify", "--dataset", "toy", "--root", str(root)], registry=reg) != 0
    out = "".join(capsys.readouterr())
    for rel in GOOD:
        assert rel in out
    # a download repairs all three (the modified one despite the verified-hash cache)
    assert dl.download("toy", root=root, mirror=mirror, registry=reg, progress=False) == 0
    assert dl.verify("toy", root=root, registry=reg) == []


def test_verify_nothing_downloaded(tmp_path):
    reg = {"toy": _spec("toy", GOOD, None)}
    problems = dl.verify("toy", root=tmp_path / "empty", registry=reg)
    assert len(problems) == 1 and "not downloaded" in problems[0]
    assert not (tmp_path / "empty").exists()  # verifying creates nothing


# --------------------------------------------------------------------------- CLI and registry


def test_list(capsys):
    assert dl.main(["--list"]) == 0
    out = capsys.readouterr().out
    for name in ("qmul-shoes", "qmul-chairs", "qmul-handbags", "sketchy-mini", "sketchy",
                 "tuberlin"):
        assert name in out
    assert "6,250" in out and "no public upstream" in out


def test_unknown_dataset_lists_allowed(capsys):
    assert dl.main(["--dataset", "no-such-set"]) == 2
    err = capsys.readouterr().err
    assert "no-such-set" in err
    for name in R.list_datasets():
        assert name in err
    with pytest.raises(ValueError, match="qmul-shoes"):
        dl.download(["no-such-set"])


def test_sketchy_mini_needs_a_mirror(tmp_path, capsys):
    rc = dl.main(["--dataset", "sketchy-mini", "--root", str(tmp_path), "--no-progress"])
    assert rc != 0
    assert ("sketchy-mini has no public upstream; obtain it from a mirror: --mirror DIR_OR_URL"
            in capsys.readouterr().err)
    assert _files_under(tmp_path) == []


def test_packaged_registry_shape():
    reg = R.load_registry()
    assert list(reg) == R.list_datasets()
    assert R.downloadable_datasets() == ["qmul-shoes", "qmul-chairs", "qmul-handbags",
                                          "sketchy-mini"]
    counts = {n: reg[n].n_files for n in R.downloadable_datasets()}
    assert counts == {"qmul-shoes": 425, "qmul-chairs": 302, "qmul-handbags": 6,
                      "sketchy-mini": 6250}
    shoes = {f.path: f for f in reg["qmul-shoes"].files}
    assert shoes["qmul_v1/shoes/shoes_sketch_db_train.mat"].url == (
        "https://raw.githubusercontent.com/yuqian1023/Deep_SBIR_tf/"
        "838c17c9a1447e1634f1bfa220e2ecc71030d4b5/data/shoes/shoes_sketch_db_train.mat")
    assert shoes["qmul_v1/shoes/photos/test/305.jpg"].url == (
        "https://raw.githubusercontent.com/lyd911/Deep_SBIR_tf/"
        "c157a490e14b9080acd5f08e69986c0230b3aec8/data/shoes/test/images/305.jpg")
    handbags = {f.path for f in reg["qmul-handbags"].files}
    assert "qmul_v1/handbags/handbags_annotation.json" in handbags
    assert all(f.url is None for f in reg["sketchy-mini"].files)
    assert all(f.url for n in ("qmul-shoes", "qmul-chairs", "qmul-handbags") for f in reg[n].files)
    sk = {c.what: c for c in reg["sketchy"].manual.structure}
    assert (sk["sketches"].categories, sk["photos"].categories) == (125, 125)
    assert (sk["sketches"].files, sk["photos"].files) == (75471, 12500)
    assert sk["sketches"].dir == "sketchy/256x256/sketch/tx_000000000000"
    tu = reg["tuberlin"].manual.structure[0]
    assert (tu.dir, tu.categories, tu.files) == ("tuberlin/png", 250, 20000)


# --------------------------------------------------------------------------- manual datasets


def _small_sketchy() -> dict[str, DatasetSpec]:
    real = R.REGISTRY["sketchy"]
    structure = (StructureCheck("sketches", "sketchy/256x256/sketch/tx_000000000000", ".png", 3, 6),
                 StructureCheck("photos", "sketchy/256x256/photo/tx_000000000000", ".jpg", 3, 3))
    return {"sketchy": dataclasses.replace(
        real, manual=dataclasses.replace(real.manual, structure=structure))}


def test_manual_sketchy_steps_and_structure(tmp_path, capsys):
    reg, root = _small_sketchy(), tmp_path / "data"
    assert dl.main(["--dataset", "sketchy", "--root", str(root)], registry=reg) != 0
    out = "".join(capsys.readouterr())
    assert "https://drive.google.com/file/d/0B7ISyeE8QtDdTjE1MG9Gcy1kSkE/view" in out
    assert "rendered_256x256.7z" in out and f"7z x rendered_256x256.7z -o{root}/sketchy" in out
    assert "sketchy/256x256/sketch/tx_000000000000/<category>/*.png" in out
    assert "sketchy/256x256/photo/tx_000000000000/<category>/*.jpg" in out
    assert "folder missing" in out

    sketch = root / "sketchy/256x256/sketch/tx_000000000000"
    photo = root / "sketchy/256x256/photo/tx_000000000000"
    for cat in ("airplane", "ant", "cat"):
        (sketch / cat).mkdir(parents=True)
        (photo / cat).mkdir(parents=True)
        (photo / cat / "n1.jpg").write_bytes(b"jpg")
        for k in (1, 2):
            (sketch / cat / f"n1-{k}.png").write_bytes(b"png")
    assert dl.main(["--verify", "--dataset", "sketchy", "--root", str(root)], registry=reg) == 0
    assert "structure OK" in "".join(capsys.readouterr())
    assert dl.verify("sketchy", root=root, registry=reg) == []

    (sketch / "ant" / "n1-2.png").unlink()
    for f in (photo / "cat").iterdir():
        f.unlink()
    problems = dl.verify("sketchy", root=root, registry=reg)
    text = "\n".join(problems)
    assert "5 *.png files, expected 6 (1 missing)" in text
    assert "no *.jpg files in 1 categories: cat" in text
    assert "2 *.jpg files, expected 3 (1 missing)" in text


def test_manual_structure_hints_a_misplaced_unpack(tmp_path):
    reg, root = _small_sketchy(), tmp_path / "data"
    (root / "sketchy/rendered_256x256/256x256/sketch/tx_000000000000").mkdir(parents=True)
    problems, _ = R.check_structure(reg["sketchy"], root)
    assert any("rendered_256x256/256x256/sketch/tx_000000000000 instead" in p for p in problems)


def test_manual_tuberlin_steps(tmp_path, capsys):
    assert dl.main(["--dataset", "tuberlin", "--root", str(tmp_path)]) != 0
    out = "".join(capsys.readouterr())
    assert "http://cybertron.cg.tu-berlin.de/eitz/projects/classifysketch/sketches_png.zip" in out
    assert f"unzip -q sketches_png.zip -d {tmp_path}/tuberlin" in out
    assert "tuberlin/png/<category>/*.png" in out and "20,000" in out


# --------------------------------------------------------------------------- real mirror


def _shared_mirror() -> Path | None:
    env = os.environ.get("SBIR_DATA_MIRROR")
    cand = Path(env) if env and "://" not in env else REPO.parent / "shared" / "data"
    return cand if (cand / "qmul_v1" / "SHA256SUMS").is_file() else None


@pytest.mark.realdata
def test_registry_matches_shared_mirror():
    mirror = _shared_mirror()
    if mirror is None:
        pytest.skip("no local data mirror ($SBIR_DATA_MIRROR or <repo>/../shared/data)")
    expected: dict[str, dict[str, tuple[str, int]]] = {}
    for top in ("qmul_v1", "sketchy_mini"):
        for line in (mirror / top / "SHA256SUMS").read_text().splitlines():
            if not line.strip():
                continue
            sha, name = line.split(maxsplit=1)
            rel = name.lstrip("*").removeprefix("./")
            if top == "qmul_v1":
                ds = "qmul-" + rel.split("/")[0]
            else:
                ds = "sketchy-mini"
            expected.setdefault(ds, {})[f"{top}/{rel}"] = (sha, (mirror / top / rel).stat().st_size)
    assert set(expected) == set(R.downloadable_datasets())
    for name, files in expected.items():
        got = {f.path: (f.sha256, f.size) for f in R.REGISTRY[name].files}
        assert got == files, name
