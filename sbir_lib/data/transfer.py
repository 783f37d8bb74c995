"""How one file travels from a mirror or upstream URL into the data root, and the pool that moves many at once.

Taught in: ``notebooks/00_data_and_domain_gap.ipynb`` (why every byte is checked). Used by
:mod:`sbir_lib.data.download`, which decides what to fetch and reports the outcome; this module only moves bytes.

- :func:`fetch_file`: stream one file into ``<dest>.part`` while hashing it, resume a leftover ``.part`` with
  an HTTP ``Range`` request, and move it to its final name (``os.replace``, atomic) only when size and SHA-256
  match the registry. Nothing unverified ever gets a final name.
- Failures are sorted by what fixes them: :class:`NetworkError` (the source failed: retry, or use a mirror;
  the ``.part`` is kept for resuming), :class:`WriteError` (the local disk failed: full, read-only, file too
  large; the ``.part`` is removed), :class:`SourceMissingError` (404 or a file the mirror lacks) and
  :class:`IntegrityError` (wrong bytes, refused and deleted).
- :class:`Limits`: a transfer fails when no byte arrives for ``timeout`` seconds, or when fewer than
  ``min_rate`` bytes/s arrive over ``rate_window`` seconds: a server that trickles a byte every few seconds
  never trips a per-read timeout, but trips this.
- :class:`WorkerPool`: ``jobs`` daemon threads. Stopping it (Ctrl-C, a full disk) shuts down the sockets the
  workers are blocked on and waits at most :data:`STOP_GRACE_S`; a worker still stuck after that is abandoned
  (a ``.part`` only ever holds a prefix of its file, so resuming stays safe).
- :func:`check_writable`: make the data root and write a probe file into it before any transfer starts.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sbir_lib.data.registry import FileEntry

__all__ = [
    "CHUNK",
    "MIN_RATE",
    "PART_SUFFIX",
    "RATE_WINDOW_S",
    "STOP_GRACE_S",
    "TIMEOUT_S",
    "Cancelled",
    "CreatedDirs",
    "DownloadError",
    "IntegrityError",
    "Limits",
    "NetworkError",
    "SourceMissingError",
    "StopSignal",
    "WorkerPool",
    "WriteError",
    "check_writable",
    "fetch_file",
    "part_path",
]

TIMEOUT_S = 30.0            # no byte for this long (connect, or any read): the transfer failed
MIN_RATE = 1024.0           # bytes/s: slower than this over RATE_WINDOW_S, the transfer failed
RATE_WINDOW_S = 60.0
CHUNK = 1 << 20             # block size for local copies and hashing
NET_READ = 64 << 10         # at most this much per network read; a read returns as soon as bytes arrive
PART_SUFFIX = ".part"
STOP_GRACE_S = 1.0          # how long a stop waits for the workers to close their files
USER_AGENT = "sbir-course/0.1 (+data_download.py)"
READ_ONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


# --------------------------------------------------------------------------- errors


class DownloadError(Exception):
    """A file could not be obtained."""


class IntegrityError(DownloadError):
    """The bytes received do not match the registry (size or SHA-256)."""

    def __init__(self, path: str, expected: str, actual: str, expected_size: int, actual_size: int):
        self.path, self.expected, self.actual = path, expected, actual
        self.expected_size, self.actual_size = expected_size, actual_size
        size = ("" if expected_size == actual_size
                else f"; expected {expected_size:,} bytes, got {actual_size:,}")
        super().__init__(f"{path}: checksum mismatch, refused and deleted "
                         f"(expected sha256 {expected}, actual {actual}{size})")


class NetworkError(DownloadError):
    """The source failed: connection refused, timeout, trickle, broken transfer, HTTP 5xx. Worth retrying.

    ``path`` (registry path), ``url``, ``reason`` and ``kept`` (bytes of ``.part`` kept for resuming) say
    what happened; ``str(e)`` is the whole sentence, ``e.short`` the one-line ``path: reason`` form.
    """

    def __init__(self, message: str, short: str = "", *, path: str = "", url: str = "", reason: str = "",
                 kept: int = 0):
        super().__init__(message)
        self.short = short or message
        self.path, self.url, self.reason, self.kept = path, url, reason, kept


class SourceMissingError(DownloadError):
    """The mirror (or upstream) does not have the file (HTTP 403/404/410, or no such file in a folder)."""


class WriteError(DownloadError):
    """The local disk failed: ``path`` could not be created or written (``error``: the ``OSError``).

    ``kind`` is ``"read-only"`` (EROFS, EACCES, EPERM), ``"full"`` (ENOSPC, EDQUOT), ``"too-large"`` (EFBIG:
    the file system's size limit) or ``"other"``; :meth:`advice` says what to do about it.
    """

    def __init__(self, path: Path | str, error: OSError):
        self.path, self.error = Path(path), error
        code = error.errno
        self.kind = ("read-only" if code in READ_ONLY_ERRNOS else "full" if code in NO_SPACE_ERRNOS
                     else "too-large" if code == errno.EFBIG else "other")
        reason = error.strerror or str(error) or type(error).__name__
        super().__init__(f"cannot write {self.path}: {reason}" + (f" [errno {code}]" if code else ""))

    def advice(self) -> str:
        """What the user can do, before the re-run command."""
        if self.kind == "read-only":
            return "the data root is not writable: choose a writable one with --root DIR (or $SBIR_DATA_ROOT)"
        if self.kind == "full":
            return "free some disk space, or choose a data root on another disk with --root DIR"
        if self.kind == "too-large":
            return "the file system cannot hold a file this large: choose a data root elsewhere with --root DIR"
        return "check the disk and its permissions, or choose another data root with --root DIR"


class Cancelled(Exception):
    """The transfer was stopped (Ctrl-C, or another worker's write error); its ``.part`` is kept."""


# --------------------------------------------------------------------------- limits, stopping, folders


@dataclass(frozen=True)
class Limits:
    """When a transfer counts as failed (a :class:`NetworkError`): no byte for ``timeout`` seconds (connect
    and every read), or fewer than ``min_rate`` bytes/s over ``rate_window`` seconds (``min_rate`` 0: never)."""

    timeout: float = TIMEOUT_S
    min_rate: float = MIN_RATE
    rate_window: float = RATE_WINDOW_S


class StopSignal:
    """A flag every transfer checks after each read; setting it also shuts down the sockets of the open
    HTTP responses, so that workers blocked in a read wake up at once instead of after ``timeout``."""

    def __init__(self):
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def set(self) -> None:
        self._event.set()
        with self._lock:
            for sock in list(self._sockets):
                _shutdown(sock)

    @contextlib.contextmanager
    def watching(self, resp) -> Iterator[None]:
        """Register ``resp``'s socket for :meth:`set` while the body is read."""
        sock = _socket_of(resp)
        if sock is None:
            yield
            return
        with self._lock:
            self._sockets.add(sock)
        if self._event.is_set():
            _shutdown(sock)
        try:
            yield
        finally:
            with self._lock:
                self._sockets.discard(sock)


def _socket_of(resp) -> socket.socket | None:
    """The socket under a ``urllib`` HTTP response (``resp.fp.raw._sock``), or None where it has none."""
    sock = getattr(getattr(getattr(resp, "fp", None), "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class CreatedDirs:
    """The folders made for downloads (thread-safe), so that those every file failed in can be removed."""

    def __init__(self):
        self._made: list[Path] = []
        self._lock = threading.Lock()

    def make(self, path: Path) -> None:
        """Create ``path`` and its missing parents, remembering each folder this call created."""
        missing = []
        p = Path(path)
        while not p.exists() and p != p.parent:
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            try:
                os.mkdir(d)
            except FileExistsError:  # another worker made it first
                continue
            with self._lock:
                self._made.append(d)

    def remove_empty(self) -> None:
        """Remove the created folders that are empty now, deepest first (a folder with files stays)."""
        with self._lock:
            made, self._made = self._made, []
        for d in sorted(made, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(d)


def part_path(dest: Path) -> Path:
    """``<dest>.part``: where a file is written until it is verified."""
    return dest.with_name(dest.name + PART_SUFFIX)


def check_writable(root: Path, dirs: CreatedDirs, need: int = 0) -> None:
    """Make ``root`` and write (then delete) a probe file in it; with ``need`` > 0 also check that many
    bytes are free. Raises :class:`WriteError` naming ``root``, before any transfer has started."""
    try:
        dirs.make(root)
    except OSError as e:
        raise WriteError(root, e) from None
    probe = root / f".sbir-write-test-{os.getpid()}-{threading.get_ident()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
    except OSError as e:
        raise WriteError(root, e) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)
    if need > 0:
        import shutil

        free = shutil.disk_usage(root).free
        if free < need:
            raise WriteError(root, OSError(errno.ENOSPC, f"not enough free space: these downloads need "
                                                         f"{need / 2**20:,.1f} MiB, {free / 2**20:,.1f} MiB free"))


# --------------------------------------------------------------------------- streaming


class _PartWriter:
    """The open ``.part`` file: every ``OSError`` while writing it becomes a :class:`WriteError` naming it."""

    def __init__(self, path: Path, append: bool):
        self.path = path
        try:
            self.fh = open(path, "ab" if append else "wb")  # noqa: SIM115 (closed by __exit__)
        except OSError as e:
            raise WriteError(path, e) from None

    def write(self, data: bytes) -> None:
        try:
            self.fh.write(data)
        except OSError as e:
            raise WriteError(self.path, e) from None

    def finish(self) -> None:
        """Flush and fsync: the bytes are on disk before the file is verified and renamed."""
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
        except OSError as e:
            raise WriteError(self.path, e) from None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.fh.close()
        except OSError as e:
            if exc_type is None:  # else the first error is the one to report
                raise WriteError(self.path, e) from None


class _SpeedGuard:
    """Fails a transfer averaging under ``min_rate`` bytes/s over a window of ``rate_window`` seconds."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.t0 = time.monotonic()
        self.n0 = 0

    def check(self, total: int) -> None:
        if self.limits.min_rate <= 0:
            return
        now = time.monotonic()
        span = now - self.t0
        if span < self.limits.rate_window:
            return
        rate = (total - self.n0) / span
        if rate < self.limits.min_rate:
            raise _ReadFailed(f"too slow: {total - self.n0:,} bytes in the last {span:.1f} s, "
                              f"under the minimum of {self.limits.min_rate:,.0f} bytes/s")
        self.t0, self.n0 = now, total


class _ReadFailed(Exception):
    """Reading the source failed (``str``: the reason); the caller turns it into a :class:`NetworkError`."""


def _copy(read: Callable[[], bytes], out: _PartWriter, h, on_bytes: Callable[[int], None],
          stop: StopSignal, guard: _SpeedGuard | None = None) -> int:
    """Copy blocks from ``read()`` into ``out`` while hashing them; return the number of bytes copied.

    The stop flag is checked after every read, so a stopped transfer writes nothing more."""
    n = 0
    while True:
        try:
            chunk = read()
        except (OSError, http.client.HTTPException) as e:
            if stop.is_set():
                raise Cancelled from None
            raise _ReadFailed(_reason(e)) from None
        if stop.is_set():
            raise Cancelled
        if not chunk:
            return n
        out.write(chunk)
        h.update(chunk)
        n += len(chunk)
        on_bytes(len(chunk))
        if guard is not None:
            guard.check(n)


def _reason(e: BaseException) -> str:
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timed out waiting for data"
    reason = getattr(e, "reason", None) or e
    return str(reason) or type(e).__name__


def _hash_existing(part: Path, h, on_bytes) -> int:
    n = 0
    try:
        with open(part, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
                n += len(chunk)
                on_bytes(len(chunk))
    except OSError as e:
        raise WriteError(part, e) from None
    return n


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        raise WriteError(path, e) from None


def _network_error(entry: FileEntry, url: str, reason: str, part: Path) -> NetworkError:
    try:
        have = part.stat().st_size
    except OSError:
        have = 0
    if not have:  # nothing to resume: no empty .part is left behind
        _unlink(part)
    kept = (f" Kept {part.name} ({have:,} of {entry.size:,} bytes) to resume." if have else "")
    return NetworkError(f"{entry.path}: network failure fetching {url}: {reason}.{kept}",
                        f"{entry.path}: {reason}" + (f" (kept {have:,} bytes)" if have else ""),
                        path=entry.path, url=url, reason=reason, kept=have)


def _copy_local(entry: FileEntry, src: Path, part: Path, h, on_bytes, stop: StopSignal) -> None:
    # only opening ``src`` raises OSError here: _PartWriter and _copy turn theirs into WriteError / _ReadFailed
    try:
        with open(src, "rb") as fi, _PartWriter(part, append=False) as out:
            _copy(lambda: fi.read(CHUNK), out, h, on_bytes, stop)
            out.finish()
    except FileNotFoundError:
        raise SourceMissingError(f"{entry.path}: the mirror lacks this file (no {src})") from None
    except (OSError, _ReadFailed) as e:
        raise _network_error(entry, str(src), f"cannot read the mirror's file ({_reason(e)})", part) from None


def _fetch_http(entry: FileEntry, url: str, part: Path, h, on_bytes, stop: StopSignal, limits: Limits,
                retried: bool = False) -> None:
    """Stream ``url`` into ``part``, resuming a leftover ``part`` with a Range request."""
    try:
        offset = part.stat().st_size
    except FileNotFoundError:
        offset = 0
    if offset > entry.size:
        _unlink(part)
        offset = 0
    if offset and offset == entry.size:  # complete but never verified: just check it
        _hash_existing(part, h, on_bytes)
        return
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=limits.timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset and not retried:  # our partial file is no use to this server: start over
            _unlink(part)
            return _fetch_http(entry, url, part, h, on_bytes, stop, limits, retried=True)
        if e.code in (403, 404, 410):
            where = ("the mirror lacks this file" if url != entry.url else
                     "the upstream file may have moved; try a mirror: --mirror DIR_OR_URL")
            raise SourceMissingError(f"{entry.path}: {url} answered HTTP {e.code} {e.reason} ({where})") from None
        raise _network_error(entry, url, f"HTTP {e.code} {e.reason}", part) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        if stop.is_set():
            raise Cancelled from None
        raise _network_error(entry, url, _reason(e), part) from None
    with resp, stop.watching(resp):
        content_range = resp.headers.get("Content-Range", "")
        resumed = bool(offset and resp.status == 206
                       and content_range.replace("bytes ", "").startswith(f"{offset}-"))
        if resp.status == 206 and not resumed:  # a range we did not ask for: start over
            if retried:
                raise _network_error(entry, url, f"the server sent an unexpected range ({content_range})", part)
            resp.close()
            _unlink(part)
            return _fetch_http(entry, url, part, h, on_bytes, stop, limits, retried=True)
        if not resumed:  # 200 (the server ignores ranges) or a fresh download: from zero
            offset = 0
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        with _PartWriter(part, append=resumed) as out:
            if resumed:
                _hash_existing(part, h, on_bytes)
            try:
                read1 = getattr(resp, "read1", None) or resp.read  # read1: whatever has arrived
                got = _copy(lambda: read1(NET_READ), out, h, on_bytes, stop, _SpeedGuard(limits))
            except _ReadFailed as e:
                out.finish()
                raise _network_error(entry, url, f"transfer broke off: {e}", part) from None
            except Cancelled:
                out.finish()
                raise
            out.finish()
    # http.client returns a short body silently when the peer closes early: compare lengths.
    if (length is not None and got < length) or (length is None and offset + got < entry.size):
        expected = offset + (length if length is not None else entry.size - offset)
        raise _network_error(entry, url, f"transfer broke off after {offset + got:,} of {expected:,} bytes", part)


def fetch_file(entry: FileEntry, root: Path, source: str | Path, on_bytes: Callable[[int], None],
               stop: StopSignal, limits: Limits = Limits(), dirs: CreatedDirs | None = None) -> None:
    """Fetch one file from ``source`` (a URL, or a file of a mirror folder) into ``<dest>.part``, verify it,
    then move it into place atomically. ``on_bytes(n)`` is called for every block (progress).

    Raises :class:`NetworkError` (HTTP: ``.part`` kept for resuming), :class:`WriteError` and
    :class:`IntegrityError` (``.part`` removed), :class:`SourceMissingError`, or :class:`Cancelled`."""
    dest = entry.dest(root)
    part = part_path(dest)
    try:
        (dirs or CreatedDirs()).make(dest.parent)
    except OSError as e:
        raise WriteError(dest.parent, e) from None
    h = hashlib.sha256()
    local = isinstance(source, Path)
    resumed = (not local) and part.exists() and 0 < part.stat().st_size < entry.size
    try:
        if local:
            _copy_local(entry, source, part, h, on_bytes, stop)
        else:
            _fetch_http(entry, source, part, h, on_bytes, stop, limits)
            if resumed and h.hexdigest() != entry.sha256:
                # the kept prefix was not this file's (another version, damaged on disk): the resumed whole fails
                # its hash through no fault of the source, so start over once, in this run
                _unlink(part)
                h = hashlib.sha256()
                _fetch_http(entry, source, part, h, on_bytes, stop, limits)
    except (NetworkError, Cancelled):
        if local:  # nothing to resume from a folder: never leave a partial copy behind
            with contextlib.suppress(OSError):
                part.unlink()
        raise
    except BaseException:  # write errors, a missing source, anything unexpected: no partial file
        with contextlib.suppress(OSError):
            part.unlink()
        raise
    try:
        size = part.stat().st_size
    except OSError as e:
        raise WriteError(part, e) from None
    actual = h.hexdigest()
    if size != entry.size or actual != entry.sha256:
        with contextlib.suppress(OSError):
            part.unlink()
        raise IntegrityError(entry.path, entry.sha256, actual, entry.size, size)
    try:
        os.replace(part, dest)
    except OSError as e:
        with contextlib.suppress(OSError):
            part.unlink()
        raise WriteError(dest, e) from None


# --------------------------------------------------------------------------- worker pool


class WorkerPool:
    """``jobs`` daemon threads running ``work(item)``; use as a context manager around :meth:`run`.

    Leaving the ``with`` block normally waits for the workers (they are done by then); leaving it by an
    exception (Ctrl-C) calls :meth:`stop`: the stop flag is set, the sockets the workers read are shut
    down, and the workers get at most :data:`STOP_GRACE_S` to close their files. Daemon threads never hold
    up the interpreter's exit, so a Ctrl-C ends the program at once.
    """

    def __init__(self, jobs: int, stop: StopSignal | None = None):
        self.jobs = max(1, int(jobs))
        self.stop_signal = stop or StopSignal()
        self._threads: list[threading.Thread] = []

    def run(self, work: Callable, items: Iterable) -> Iterator:
        """Yield ``work(item)`` for every item, in the order they finish. An exception escaping ``work``
        is re-raised here (``work`` is meant to catch what it expects)."""
        todo: queue.SimpleQueue = queue.SimpleQueue()
        items = list(items)
        for item in items:
            todo.put(item)
        done: queue.SimpleQueue = queue.SimpleQueue()

        def worker() -> None:
            while not self.stop_signal.is_set():
                try:
                    item = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put((True, work(item)))
                except BaseException as e:  # noqa: BLE001 (re-raised in the consuming thread)
                    done.put((False, e))

        for k in range(min(self.jobs, len(items))):
            t = threading.Thread(target=worker, name=f"sbir-download-{k}", daemon=True)
            t.start()
            self._threads.append(t)
        for _ in items:
            while True:
                try:  # a short timeout keeps the consuming (main) thread responsive to Ctrl-C
                    ok, value = done.get(timeout=0.1)
                    break
                except queue.Empty:
                    if self.stop_signal.is_set() and not any(t.is_alive() for t in self._threads):
                        return
            if not ok:
                raise value
            yield value

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Stop every worker now; wait at most ``grace`` seconds in all for them to finish."""
        self.stop_signal.set()
        self._join(time.monotonic() + grace)

    def _join(self, deadline: float | None) -> None:
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.stop()
        else:
            self._join(None)
