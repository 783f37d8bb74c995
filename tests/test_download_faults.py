"""Faults of ``sbir_lib.data.download`` / ``sbir_lib.data.transfer`` against a misbehaving local HTTP server.

The server (``http.server`` in a thread, 127.0.0.1 only) serves every file of its folder in a mode chosen per
path: ``ok``, ``half`` (promise the length, send half, hang up), ``corrupt`` (one byte flipped), ``404``,
``500``, ``trickle`` (a byte every 50 ms), ``stall`` (some bytes, then nothing) and ``stall-headers`` (no
answer at all). Every wait in it is bounded. Disk faults are simulated: a full disk by replacing ``open`` in
:mod:`sbir_lib.data.transfer` with one whose writes fail with ENOSPC/EFBIG, a read-only root by an
``os.open``/``os.mkdir`` that fail with EROFS under it (the tests run as root, for whom ``chmod`` blocks
nothing). Ctrl-C is a real SIGINT sent to a download running in a subprocess.
"""
from __future__ import annotations

import errno
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from sbir_lib.data import download as dl
from sbir_lib.data import transfer as T
# the fixtures' data, registry entries and file helpers are test_download's (tests/ is on sys.path)
from test_download import _bytes, _closed_port, _files_under, _sha, _spec

REPO = Path(__file__).resolve().parent.parent


FILES = {
    "toy/a.bin": _bytes(200_000, 11),
    "toy/sub/b.bin": _bytes(30_000, 12),
    "toy/sub/c.txt": b"sketch\n" * 100,
}


class _FaultyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        rel = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).lstrip("/")
        rng = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((rel, rng))
        mode = srv.modes.get(rel, "ok")
        data = srv.files.get(rel)
        try:
            if data is None or mode == "404":
                self.send_error(404)
            elif mode == "500":
                self.send_error(500)
            elif mode == "stall-headers":
                srv.stalled.set()
                srv.release.wait(20)
            else:
                self._send(data, rng, mode)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up: expected here
            pass

    def _send(self, data: bytes, rng: str | None, mode: str) -> None:
        srv = self.server
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and int(m.group(1)) < len(data):
            start = int(m.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if mode == "corrupt":
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "half":
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif mode == "trickle":
            for k in range(min(len(body), 200)):  # at most 10 s
                if srv.release.is_set():
                    break
                self.wfile.write(body[k:k + 1])
                self.wfile.flush()
                time.sleep(0.05)
            self.close_connection = True
        elif mode == "stall":
            self.wfile.write(body[: srv.stall_after])
            self.wfile.flush()
            srv.stalled.set()
            srv.release.wait(20)
            self.close_connection = True
        else:
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """``.url``, ``.files`` (what it serves), ``.modes`` (per path), ``.requests``, ``.stalled``/``.release``."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FaultyHandler)
    srv.daemon_threads = True
    srv.files, srv.modes, srv.requests, srv.lock = dict(FILES), {}, [], threading.Lock()
    srv.stalled, srv.release, srv.stall_after = threading.Event(), threading.Event(), 100_000
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    for var in ("SBIR_DATA_MIRROR", "SBIR_DATA_ROOT", "SBIR_PROGRESS"):
        monkeypatch.delenv(var, raising=False)


def _dirs_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir())


def _run(capsys, *args, **kw) -> tuple[int, str, str]:
    kw.setdefault("progress", False)
    rc = dl.download(*args, **kw)
    out = capsys.readouterr()
    return rc, out.out, out.err


# --------------------------------------------------------------------------- network faults


def test_offline_all_one_error_per_dataset_and_no_empty_folders(tmp_path, capsys):
    """Offline ``--all``: one line per dataset, the counts add up, nothing is left behind."""
    up = f"http://127.0.0.1:{_closed_port()}/"
    reg = {name: _spec(name, {f"{name}/d{i // 4}/f{i}.bin": _bytes(100 + i, i) for i in range(20)}, up)
           for name in ("set-a", "set-b", "set-c")}
    root = tmp_path / "data"
    rc = dl.main(["--all", "--root", str(root)], registry=reg)  # progress on: no terminal, so no bars
    out = capsys.readouterr()
    assert rc == 1
    assert "\r" not in out.err and "%|" not in out.err  # no progress-bar redraws into a pipe
    lines = [line for line in out.err.splitlines() if line.strip()]
    for name in reg:
        mine = [line for line in lines if line.startswith(f"{name}:")]
        assert len(mine) == 1, mine  # one clear error per dataset
        (line,) = mine
        m = re.search(r"(\d+) of 20 files NOT obtained \((\d+) network failures?(?:, then (\d+) not attempted)?\)",
                      line)
        assert m, line
        bad, net, skipped = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        assert bad == 20 and net + skipped == 20 and net >= dl.MAX_NETWORK_FAILURES
        assert f"python data_download.py --dataset {name} --root {root} --mirror DIR_OR_URL" in line
        assert "Offline?" in line and "stopped after" not in line
    assert lines[-1].startswith("summary: problems with set-a, set-b, set-c")
    assert len(lines) == 4
    assert not root.exists() or (_files_under(root), _dirs_under(root)) == ([], [])


def test_half_sent_file_is_kept_and_resumed(tmp_path, server, capsys):
    reg = {"toy": _spec("toy", FILES, server.url)}
    root = tmp_path / "data"
    server.modes["toy/a.bin"] = "half"
    rc, _, err = _run(capsys, "toy", root=root, registry=reg)
    assert rc == 1
    assert "1 network failure" in err and "toy/a.bin: transfer broke off" in err
    assert f"re-run later (partial files resume): python data_download.py --dataset toy --root {root}" in err
    part = root / "toy/a.bin.part"
    assert part.stat().st_size == len(FILES["toy/a.bin"]) // 2 and not (root / "toy/a.bin").exists()

    server.modes.clear()
    server.requests.clear()
    assert _run(capsys, "toy", root=root, registry=reg)[0] == 0
    assert ("toy/a.bin", f"bytes={len(FILES['toy/a.bin']) // 2}-") in server.requests
    assert (root / "toy/a.bin").read_bytes() == FILES["toy/a.bin"] and not part.exists()


def test_a_part_with_wrong_bytes_is_restarted_in_the_same_run(tmp_path, server, capsys):
    """A leftover ``.part`` that is not a prefix of the file: the resumed whole fails its hash, so the same run
    starts over from zero and succeeds (issue 26 item 4); without the fix the run failed, blaming the source."""
    reg = {"toy": _spec("toy", FILES, server.url)}
    root = tmp_path / "data"
    part = root / "toy/a.bin.part"
    part.parent.mkdir(parents=True)
    good = FILES["toy/a.bin"]
    part.write_bytes(bytes(b ^ 0xFF for b in good[:len(good) // 2]))  # right length, wrong bytes
    rc, _, err = _run(capsys, "toy", root=root, registry=reg)
    assert rc == 0, err
    assert (root / "toy/a.bin").read_bytes() == good and not part.exists()
    ranged = [r for r in server.requests if r[0] == "toy/a.bin" and r[1]]
    assert ranged == [("toy/a.bin", f"bytes={len(good) // 2}-")]  # resumed once, then fetched whole


def test_corrupt_bytes_refused_and_deleted(tmp_path, server, capsys):
    reg = {"toy": _spec("toy", FILES, server.url)}
    root = tmp_path / "data"
    server.modes["toy/sub/b.bin"] = "corrupt"
    rc, _, err = _run(capsys, "toy", root=root, registry=reg)
    assert rc == 1
    assert "toy/sub/b.bin: checksum mismatch, refused and deleted" in err
    assert _sha(FILES["toy/sub/b.bin"]) in err
    assert "1 refused: checksum mismatch" in err
    assert f"python data_download.py --dataset toy --root {root} --mirror DIR_OR_URL" in err
    assert not (root / "toy/sub/b.bin").exists() and not (root / "toy/sub/b.bin.part").exists()
    assert (root / "toy/sub/c.txt").read_bytes() == FILES["toy/sub/c.txt"]  # the others arrive


def test_upstream_404_and_500(tmp_path, server, capsys):
    reg = {"toy": _spec("toy", FILES, server.url)}
    root = tmp_path / "data"
    server.modes.update({"toy/a.bin": "404", "toy/sub/b.bin": "500"})
    rc, _, err = _run(capsys, "toy", root=root, registry=reg)
    assert rc == 1
    assert "toy/a.bin" in err and "HTTP 404" in err and "upstream file may have moved" in err
    assert "1 network failure, 1 missing on the source" in err and "HTTP 500" in err
    assert "Offline? Fetch from a mirror instead" in err
    assert not (root / "toy/a.bin").exists() and not list(root.rglob("*.part"))


def test_failing_http_mirror_is_named_not_offline(tmp_path, server, capsys):
    """With a mirror in use the advice names the mirror that failed, never "Offline? use a mirror"."""
    reg = {"toy": _spec("toy", FILES, None)}
    root = tmp_path / "data"
    server.modes.update({p: "500" for p in FILES})
    rc = dl.main(["--dataset", "toy", "--root", str(root), "--mirror", server.url, "--no-progress"],
                 registry=reg)
    err = capsys.readouterr().err
    assert rc == 1
    assert f"The mirror {server.url} failed, first error:" in err and "HTTP 500" in err
    assert "Offline?" not in err
    assert f"python data_download.py --dataset toy --root {root} --mirror {server.url}" in err


def test_mirror_lacking_files_names_the_mirror(tmp_path, server, capsys):
    reg = {"toy": _spec("toy", FILES, None)}
    root = tmp_path / "data"
    server.modes["toy/sub/c.txt"] = "404"
    rc, _, err = _run(capsys, "toy", root=root, registry=reg, mirror=server.url)
    assert rc == 1
    assert "toy/sub/c.txt" in err and "the mirror lacks this file" in err
    assert f"The mirror {server.url} lacks files" in err and "Offline?" not in err


def test_trickle_fails_on_minimum_speed_then_resumes(tmp_path, server, capsys):
    reg = {"toy": _spec("toy", {"toy/a.bin": FILES["toy/a.bin"]}, server.url)}
    root = tmp_path / "data"
    server.modes["toy/a.bin"] = "trickle"
    t0 = time.monotonic()
    rc, _, err = _run(capsys, "toy", root=root, registry=reg, timeout=5, min_rate=1000, rate_window=0.3)
    assert time.monotonic() - t0 < 4  # the per-read timeout (5 s) never fires: the speed check does
    assert rc == 1
    assert "too slow" in err and "under the minimum of 1,000 bytes/s" in err
    part = root / "toy/a.bin.part"
    assert 0 < part.stat().st_size < 200
    server.release.set()  # end the trickle
    server.modes.clear()
    assert _run(capsys, "toy", root=root, registry=reg)[0] == 0
    assert (root / "toy/a.bin").read_bytes() == FILES["toy/a.bin"]


def test_the_speed_window_is_a_command_line_flag(tmp_path, server, monkeypatch):
    """``--speed-window`` reaches the transfer limits (issue 26 item 6); a window <= 0 is a usage error."""
    seen = {}
    monkeypatch.setattr(dl, "download", lambda *a, **kw: seen.update(kw) or 0)
    assert dl.main(["--dataset", "qmul-shoes", "--root", str(tmp_path), "--speed-window", "7.5",
                    "--min-speed", "2"]) == 0
    assert seen["rate_window"] == 7.5 and seen["min_rate"] == 2048
    assert dl.main(["--dataset", "qmul-shoes", "--root", str(tmp_path), "--speed-window", "0"]) == 2


def test_a_resumed_run_announces_what_is_left_and_a_mirror_url_with_a_space_works(tmp_path, server, capsys):
    """The start line counts the bytes still to fetch when ``.part`` files resume, and an http mirror whose path
    has a space is percent-encoded, not reported as a network failure (issue 26 item 6)."""
    data = FILES["toy/a.bin"]
    server.files = {f"my data/{k}": v for k, v in FILES.items()}
    reg = {"toy": _spec("toy", {"toy/a.bin": data}, None)}
    root = tmp_path / "data"
    part = root / "toy/a.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:len(data) // 2])
    rc, out, err = _run(capsys, "toy", root=root, registry=reg, mirror=server.url + "my data")
    assert rc == 0, err
    left = len(data) - len(data) // 2
    assert dl.mib(left) in out and "already kept in .part files" in out
    assert (root / "toy/a.bin").read_bytes() == data
    assert ("my data/toy/a.bin", f"bytes={len(data) // 2}-") in server.requests


@pytest.mark.parametrize("after", [50_000, 0])
def test_stall_times_out_and_keeps_the_part(tmp_path, server, capsys, after):
    """A stall keeps what arrived for resuming; nothing arrived: no 0-byte ``.part`` stays (issue 26 item 6)."""
    reg = {"toy": _spec("toy", {"toy/a.bin": FILES["toy/a.bin"]}, server.url)}
    root = tmp_path / "data"
    server.modes["toy/a.bin"] = "stall"
    server.stall_after = after
    rc, _, err = _run(capsys, "toy", root=root, registry=reg, timeout=0.5)
    assert rc == 1 and "timed out waiting for data" in err
    if after:
        assert "kept 50,000 bytes" in err and (root / "toy/a.bin.part").stat().st_size == 50_000
    else:
        assert "kept" not in err and not (root / "toy/a.bin.part").exists()


_SUBPROCESS_DOWNLOAD = """
import signal
import sys
# a user's terminal delivers Ctrl-C; a test run started in the background of a non-interactive shell inherits
# SIGINT ignored, and Python then installs no KeyboardInterrupt handler: restore what a terminal gives
signal.signal(signal.SIGINT, signal.default_int_handler)
from sbir_lib.data import download as dl
from sbir_lib.data.registry import DatasetSpec, FileEntry
url, root, size, sha = sys.argv[1:5]
spec = DatasetSpec(name="big", kind="files", files=(FileEntry("big/file.bin", url, int(size), sha),))
sys.exit(dl.main(["--dataset", "big", "--root", root, "--timeout", "60", "--no-progress"], registry={"big": spec}))
"""


@pytest.mark.parametrize("mode", ["stall", "stall-headers"])
def test_ctrl_c_stops_at_once_and_keeps_the_part(tmp_path, server, mode):
    """SIGINT to a download blocked on a stalled server: exits within seconds with code 130, the
    ``.part`` holds what arrived, and nothing gets its final name."""
    data = _bytes(400_000, 5)
    server.files["big/file.bin"] = data
    server.modes["big/file.bin"] = mode
    root = tmp_path / "data"
    script = tmp_path / "dl.py"
    script.write_text(_SUBPROCESS_DOWNLOAD)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), server.url + "big/file.bin", str(root), str(len(data)),
                             _sha(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    part = root / "big/file.bin.part"
    try:
        assert server.stalled.wait(30), "the download never reached the server"
        deadline = time.monotonic() + 15
        while mode == "stall" and time.monotonic() < deadline:  # let the client write what it got
            if part.exists() and part.stat().st_size >= 90_000:
                break
            time.sleep(0.05)
        time.sleep(0.2)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert elapsed < 5, f"Ctrl-C took {elapsed:.1f} s"
    assert proc.returncode == 130, err
    assert "interrupted" in err and f"python data_download.py --dataset big --root {root}" in err
    assert not (root / "big/file.bin").exists()
    if mode == "stall":
        assert part.read_bytes() == data[:100_000]  # exactly what arrived: a safe resume point
    else:
        assert not part.exists() or part.stat().st_size == 0


# --------------------------------------------------------------------------- disk faults


class _FailingWrites:
    """A file whose writes fail with ``code`` once ``limit`` bytes were written."""

    def __init__(self, fh, limit: int, code: int):
        self.fh, self.limit, self.code, self.n = fh, limit, code, 0

    def write(self, data: bytes) -> int:
        if self.n + len(data) > self.limit:
            raise OSError(self.code, os.strerror(self.code))
        self.n += len(data)
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


@pytest.mark.parametrize("code, advice", [(errno.ENOSPC, "free some disk space"),
                                          (errno.EFBIG, "cannot hold a file this large")])
def test_full_disk_is_a_write_error_not_a_network_one(tmp_path, server, monkeypatch, capsys, code, advice):
    real_open = open

    def failing_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return _FailingWrites(fh, 10_000, code) if ("w" in mode or "a" in mode) else fh

    monkeypatch.setattr(T, "open", failing_open, raising=False)
    reg = {"toy": _spec("toy", FILES, server.url), "more": _spec("more", {"more/x.bin": b"x" * 50}, server.url)}
    root = tmp_path / "data"
    rc = dl.main(["--dataset", "toy", "--dataset", "more", "--root", str(root), "--no-progress", "--jobs", "1"],
                 registry=reg)
    err = capsys.readouterr().err
    assert rc == 1
    assert f"cannot write {root}/toy/" in err and os.strerror(code) in err and advice in err
    assert "--root DIR" in err and f"then re-run: python data_download.py --dataset toy --root {root}" in err
    assert "network failure" not in err and "Offline?" not in err
    assert ("more: not attempted (writing to the data root failed, see above); after fixing that re-run: "
            f"python data_download.py --dataset more --root {root}") in err
    assert not list(root.rglob("*.part"))  # the partial file is removed: it only takes space
    assert [f for f in _files_under(root) if f != dl.CACHE_NAME and not f.startswith("toy/")] == []
    assert "more" not in _dirs_under(root)


@pytest.mark.parametrize("how", ["probe", "mkdir"])
def test_read_only_root_is_refused_before_any_transfer(tmp_path, server, monkeypatch, capsys, how):
    parent = tmp_path / "ro"
    parent.mkdir()
    root = parent / "data"
    if how == "probe":
        root.mkdir()
    real_open, real_mkdir = os.open, os.mkdir

    def ro_open(path, flags, *args, **kwargs):
        if str(path).startswith(str(parent)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    def ro_mkdir(path, *args, **kwargs):
        if str(path).startswith(str(parent)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", ro_open)
    monkeypatch.setattr(os, "mkdir", ro_mkdir)
    reg = {"toy": _spec("toy", FILES, server.url)}
    rc, _, err = _run(capsys, "toy", root=root, registry=reg)
    assert rc == 1
    assert server.requests == []
    assert f"toy: nothing downloaded: cannot write {root}: Read-only file system" in err
    assert "choose a writable one with --root DIR" in err
    assert "then re-run: python data_download.py --dataset toy --root DIR" in err
    assert "network" not in err and "Offline?" not in err
    assert _dirs_under(parent) == ([] if how == "mkdir" else ["data"])  # nothing made, nothing left


def test_not_enough_free_space_is_refused_before_any_transfer(tmp_path, server, monkeypatch, capsys):
    import shutil
    import types

    monkeypatch.setattr(shutil, "disk_usage", lambda p: types.SimpleNamespace(total=10**9, used=10**9, free=1000))
    reg = {"toy": _spec("toy", FILES, server.url)}
    root = tmp_path / "data"
    rc, _, err = _run(capsys, "toy", root=root, registry=reg)
    assert rc == 1 and server.requests == []
    assert "not enough free space" in err and "free some disk space" in err
    assert not root.exists()


# --------------------------------------------------------------------------- verify


def test_verify_hints_repeat_the_root(tmp_path, server, capsys):
    reg = {"toy": _spec("toy", FILES, server.url)}
    root = tmp_path / "my data"
    assert dl.main(["--verify", "--dataset", "toy", "--root", str(root)], registry=reg) == 1
    err = capsys.readouterr().err
    assert f"run: python data_download.py --dataset toy --root '{root}'" in err
    problems = dl.verify("toy", root=root, registry=reg)
    assert f"--root '{root}'" in problems[0]

    assert _run(capsys, "toy", root=root, registry=reg)[0] == 0
    (root / "toy/sub/c.txt").unlink()
    assert dl.main(["--verify", "--dataset", "toy", "--root", str(root)], registry=reg) == 1
    err = capsys.readouterr().err
    assert "missing: toy/sub/c.txt" in err
    assert f"fetch what is missing or wrong with: python data_download.py --dataset toy --root '{root}'" in err


def test_a_wrong_file_in_place_is_deleted_even_when_the_refetch_fails(tmp_path, server, capsys):
    """Right size, wrong bytes: the file leaves its final name before the re-fetch (issue 26 item 3)."""
    reg = {"toy": _spec("toy", FILES, server.url)}
    root = tmp_path / "data"
    assert _run(capsys, "toy", root=root, registry=reg)[0] == 0
    target = root / "toy/sub/b.bin"
    good = target.read_bytes()
    target.write_bytes(bytes([good[0] ^ 0xFF]) + good[1:])  # same size, wrong hash
    (root / dl.CACHE_NAME).unlink(missing_ok=True)  # the hash is checked, not a cached verdict
    server.modes["toy/sub/b.bin"] = "404"
    rc, out, err = _run(capsys, "toy", root=root, registry=reg)
    assert rc == 1 and "toy/sub/b.bin: present but wrong" in out + err and "deleted, fetching it again" in out + err
    assert not target.exists()  # nothing corrupt stays where loaders look
    server.modes.clear()
    assert _run(capsys, "toy", root=root, registry=reg)[0] == 0 and target.read_bytes() == good
