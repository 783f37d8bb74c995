"""Verified, resumable downloads of the datasets the registry (:mod:`sbir_lib.data.registry`) lists.

Taught in: ``notebooks/00_data_and_domain_gap.ipynb`` (where the data comes from, and why every byte is
checked). Used by ``data_download.py`` (and the ``sbir-download`` console script): :func:`main`.

How a file is fetched (:func:`download`): from ``<mirror>/<path>`` when a mirror is given (a folder or an
``http(s)://`` base URL with the data root's layout), else from its upstream URL. Bytes are streamed into
``<dest>.part`` beside the destination while being hashed; only when size and SHA-256 both match is the file moved
to its final name with ``os.replace`` (atomic). A mismatch deletes the ``.part`` and names the file with the
expected and actual hash. A network failure keeps the ``.part``; the next run resumes it with an HTTP
``Range: bytes=N-`` request (or starts over if the server ignores ranges). Files already present are skipped once
verified; verified hashes are remembered in ``<root>/.verified.json`` (keyed by path, size and mtime) so re-runs
do not re-hash everything; :func:`verify` always re-hashes. Manual datasets (``sketchy``, ``tuberlin``) get their
install steps printed and their folder structure checked.

Python API::

    from sbir_lib.data import download as dl
    dl.download(["qmul-shoes"], mirror="/path/to/mirror")   # -> exit code (0 = all verified)
    dl.verify(["qmul-shoes"])                      # -> list of problems ([] = all good)
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import hashlib
import http.client
import json
import os
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

from sbir_lib.core import config
from sbir_lib.core.io import sha256_file, write_json_atomic
from sbir_lib.data.registry import (DatasetSpec, FileEntry, check_names, check_structure, downloadable_datasets,
                                    format_table, get_registry, manual_steps, mib)

__all__ = ["DownloadError", "IntegrityError", "NetworkError", "SourceMissingError", "download", "verify",
           "build_parser", "main"]

TIMEOUT_S = 30.0            # per socket operation (connect, each read)
CHUNK = 1 << 20             # streaming block size
JOBS = 8                    # files fetched in parallel (thousands of small photos)
MAX_SHOWN = 20  # failure messages listed per dataset (checksum mismatches always are)
MAX_NETWORK_FAILURES = 5    # in a row: stop trying the rest of a dataset
PART_SUFFIX = ".part"
CACHE_NAME = ".verified.json"
USER_AGENT = "sbir-course/0.1 (+data_download.py)"
MIRROR_HINT = "--mirror DIR_OR_URL"
NO_UPSTREAM = "{name} has no public upstream; obtain it from a mirror: " + MIRROR_HINT


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
    """Connection refused, timeout, broken transfer, HTTP 5xx...: worth retrying.

    ``str(e)`` is the full message (with the resume and ``--mirror`` advice); ``e.short`` a
    one-line version for the second and later failures of a run.
    """

    def __init__(self, message: str, short: str = ""):
        super().__init__(message)
        self.short = short or message


class SourceMissingError(DownloadError):
    """The mirror (or upstream) does not have the file."""


class _Cancelled(Exception):
    pass


# --------------------------------------------------------------------------- hashing, cache


class _VerifiedCache:
    """``<root>/.verified.json``: ``{path: [size, mtime_ns, sha256]}`` of files already hashed."""

    def __init__(self, root: Path):
        self.path = root / CACHE_NAME
        self.lock = threading.Lock()
        self.dirty = False
        try:
            self.data: dict[str, list] = json.loads(self.path.read_text())
            if not isinstance(self.data, dict):
                raise ValueError
        except (OSError, ValueError):
            self.data = {}

    def known_good(self, entry: FileEntry, st: os.stat_result) -> bool:
        rec = self.data.get(entry.path)
        return rec == [st.st_size, st.st_mtime_ns, entry.sha256]

    def add(self, entry: FileEntry, st: os.stat_result) -> None:
        with self.lock:
            self.data[entry.path] = [st.st_size, st.st_mtime_ns, entry.sha256]
            self.dirty = True

    def drop(self, entry: FileEntry) -> None:
        with self.lock:
            if self.data.pop(entry.path, None) is not None:
                self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        with self.lock, contextlib.suppress(OSError):  # a read-only root just means no cache
            write_json_atomic(self.path, dict(sorted(self.data.items())))
            self.dirty = False


def _check_present(entry: FileEntry, root: Path, cache: _VerifiedCache | None,
                   trust_cache: bool = True) -> tuple[str, str]:
    """``("ok"|"missing"|"size"|"hash", detail)`` for the file at its final place."""
    dest = entry.dest(root)
    try:
        st = dest.stat()
    except FileNotFoundError:
        return "missing", ""
    if st.st_size != entry.size:
        if cache:
            cache.drop(entry)
        return "size", f"expected {entry.size:,} bytes, found {st.st_size:,}"
    if trust_cache and cache and cache.known_good(entry, st):
        return "ok", ""
    actual = sha256_file(dest, CHUNK)
    if actual != entry.sha256:
        if cache:
            cache.drop(entry)
        return "hash", f"expected sha256 {entry.sha256}, actual {actual}"
    if cache:
        cache.add(entry, st)
    return "ok", ""


# --------------------------------------------------------------------------- sources


def _resolve_mirror(mirror: str | os.PathLike | None) -> str | Path | None:
    """An ``http(s)://`` base URL (ending in ``/``), a local folder, or None (upstream)."""
    if mirror is None:
        mirror = os.environ.get("SBIR_DATA_MIRROR") or None
    if mirror is None:
        return None
    text = os.fspath(mirror)
    scheme = urllib.parse.urlsplit(text).scheme.lower()
    if scheme in ("http", "https"):
        return text if text.endswith("/") else text + "/"
    if scheme == "file":
        return Path(urllib.request.url2pathname(urllib.parse.urlsplit(text).path))
    return Path(text).expanduser()


def _source_of(entry: FileEntry, mirror: str | Path | None) -> str | Path | None:
    if isinstance(mirror, Path):
        return mirror.joinpath(*entry.path.split("/"))
    if isinstance(mirror, str):
        return mirror + urllib.parse.quote(entry.path)
    return entry.url


def _network_error(entry: FileEntry, url: str, reason: str, part: Path) -> NetworkError:
    have = part.stat().st_size if part.exists() else 0
    kept = (f" Kept {part.name} ({have:,} of {entry.size:,} bytes); re-run to resume."
            if have else " Re-run to retry.")
    short = f"{entry.path}: network failure: {reason}" + (f" (kept {have:,} bytes)" if have else "")
    return NetworkError(f"{entry.path}: network failure fetching {url}: {reason}.{kept} "
                        f"Offline? Fetch from a mirror instead: {MIRROR_HINT} "
                        f"(or $SBIR_DATA_MIRROR).", short)


def _stream(src, fh, h, on_bytes: Callable[[int], None], stop: threading.Event) -> int:
    """Copy ``src`` (file object or HTTP response) into ``fh``, hashing; return bytes copied."""
    n = 0
    while True:
        if stop.is_set():
            raise _Cancelled
        chunk = src.read(CHUNK)
        if not chunk:
            return n
        fh.write(chunk)
        h.update(chunk)
        n += len(chunk)
        on_bytes(len(chunk))


def _hash_existing(part: Path, h, on_bytes) -> int:
    n = 0
    with open(part, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            n += len(chunk)
            on_bytes(len(chunk))
    return n


def _copy_local(entry: FileEntry, src: Path, part: Path, h, on_bytes, stop) -> None:
    try:
        fi = open(src, "rb")
    except FileNotFoundError:
        raise SourceMissingError(f"{entry.path}: the mirror lacks this file (no {src})") from None
    with fi, open(part, "wb") as fo:
        _stream(fi, fo, h, on_bytes, stop)
        fo.flush()
        os.fsync(fo.fileno())


def _fetch_http(entry: FileEntry, url: str, part: Path, h, on_bytes, stop,
                timeout: float) -> None:
    """Stream ``url`` into ``part``, resuming a leftover ``part`` with a Range request."""
    offset = part.stat().st_size if part.exists() else 0
    if offset > entry.size:
        part.unlink()
        offset = 0
    if offset and offset == entry.size:  # complete but never verified: just check it
        _hash_existing(part, h, on_bytes)
        return
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                      timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and offset:  # our partial file is no use to this server: start over
            part.unlink()
            return _fetch_http(entry, url, part, h, on_bytes, stop, timeout)
        if e.code in (403, 404, 410):
            where = ("the mirror lacks this file" if url != entry.url else
                     f"the upstream file may have moved; try a mirror: {MIRROR_HINT}")
            raise SourceMissingError(f"{entry.path}: {url} answered HTTP {e.code} {e.reason} "
                                     f"({where})") from None
        raise _network_error(entry, url, f"HTTP {e.code} {e.reason}", part) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", None) or e
        raise _network_error(entry, url, str(reason) or type(e).__name__, part) from None
    with resp:
        content_range = resp.headers.get("Content-Range", "")
        resumed = bool(offset and resp.status == 206
                       and content_range.replace("bytes ", "").startswith(f"{offset}-"))
        if resp.status == 206 and not resumed:  # a range we did not ask for: start over
            resp.close()
            part.unlink()
            return _fetch_http(entry, url, part, h, on_bytes, stop, timeout)
        if not resumed:  # 200 (the server ignores ranges) or a fresh download: from zero
            offset = 0
        length = resp.headers.get("Content-Length")
        length = int(length) if length and length.isdigit() else None
        with open(part, "ab" if resumed else "wb") as fh:
            if resumed:
                _hash_existing(part, h, on_bytes)
            try:
                got = _stream(resp, fh, h, on_bytes, stop)
            except (OSError, http.client.HTTPException) as e:
                fh.flush()
                raise _network_error(entry, url, f"transfer broke off ({e})", part) from None
            fh.flush()
            os.fsync(fh.fileno())
    # http.client returns a short body silently when the peer closes early: compare lengths.
    if (length is not None and got < length) or (length is None and offset + got < entry.size):
        expected = offset + (length if length is not None else entry.size - offset)
        raise _network_error(entry, url, f"transfer broke off after {offset + got:,} of "
                                         f"{expected:,} bytes", part)


def _fetch(entry: FileEntry, root: Path, source: str | Path, on_bytes, stop: threading.Event,
           timeout: float = TIMEOUT_S) -> None:
    """Fetch one file into ``<dest>.part``, verify it, then move it into place atomically."""
    dest = entry.dest(root)
    part = dest.with_name(dest.name + PART_SUFFIX)
    dest.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    local = isinstance(source, Path)
    try:
        if local:
            _copy_local(entry, source, part, h, on_bytes, stop)
        else:
            _fetch_http(entry, source, part, h, on_bytes, stop, timeout)
    except (NetworkError, _Cancelled):
        if local:  # nothing to resume from a folder: never leave a partial copy behind
            with contextlib.suppress(FileNotFoundError):
                part.unlink()
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()
        raise
    size = part.stat().st_size
    actual = h.hexdigest()
    if size != entry.size or actual != entry.sha256:
        part.unlink()
        raise IntegrityError(entry.path, entry.sha256, actual, entry.size, size)
    os.replace(part, dest)


# --------------------------------------------------------------------------- output


def _say(msg: str, err: bool = False) -> None:
    from tqdm.auto import tqdm

    tqdm.write(msg, file=sys.stderr if err else sys.stdout)


def _bar(total: int, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                disable=not progress, mininterval=0.25, dynamic_ncols=True, leave=True)


def _clip(lines: list[str], limit: int = 20) -> list[str]:
    return lines if len(lines) <= limit else lines[:limit] + [f"... and {len(lines) - limit} more"]


# --------------------------------------------------------------------------- file datasets


@dataclass
class _Run:
    """Shared state of one ``download`` call."""

    root: Path
    mirror: str | Path | None
    cache: _VerifiedCache
    progress: bool
    jobs: int
    stop: threading.Event = field(default_factory=threading.Event)


def _check_all(spec: DatasetSpec, run: _Run, pool: cf.Executor, trust_cache: bool):
    return list(pool.map(lambda e: _check_present(e, run.root, run.cache, trust_cache),
                         spec.files))


def _download_files(spec: DatasetSpec, run: _Run) -> int:
    """Fetch what is missing or wrong; return the number of files that failed."""
    with cf.ThreadPoolExecutor(run.jobs) as pool:
        states = _check_all(spec, run, pool, trust_cache=True)
        todo = []
        for entry, (state, detail) in zip(spec.files, states):
            if state != "ok":
                todo.append(entry)
                if state in ("size", "hash"):
                    _say(f"{entry.path}: present but wrong ({detail}); fetching it again")
        if not todo:
            _say(f"{spec.name}: all {spec.n_files} files present and verified under {run.root}")
            return 0
        if run.mirror is None and any(e.url is None for e in todo):
            _say(NO_UPSTREAM.format(name=spec.name), err=True)
            return len(todo)
        if isinstance(run.mirror, Path) and not run.mirror.is_dir():
            _say(f"{spec.name}: the mirror folder {run.mirror} does not exist", err=True)
            return len(todo)

        where = run.mirror if run.mirror is not None else "upstream"
        _say(f"{spec.name}: fetching {len(todo)} of {spec.n_files} files "
             f"({mib(sum(e.size for e in todo))}) from {where}")
        bar = _bar(sum(e.size for e in todo), spec.name, run.progress)
        lock = threading.Lock()
        counts = {"net_in_a_row": 0}
        give_up = threading.Event()

        def on_bytes(n: int) -> None:
            with lock:
                bar.update(n)

        def one(entry: FileEntry):
            if give_up.is_set() or run.stop.is_set():
                return entry, "skipped", ""
            try:
                _fetch(entry, run.root, _source_of(entry, run.mirror), on_bytes, run.stop)
            except _Cancelled:
                return entry, "skipped", ""
            except NetworkError as e:
                with lock:
                    counts["net_in_a_row"] += 1
                    if counts["net_in_a_row"] >= MAX_NETWORK_FAILURES:
                        give_up.set()
                return entry, "network", e
            except DownloadError as e:
                return entry, "failed", str(e)
            except OSError as e:  # disk full, permissions...
                return entry, "failed", f"{entry.path}: {e}"
            with lock:
                counts["net_in_a_row"] = 0
            run.cache.add(entry, entry.dest(run.root).stat())
            return entry, "ok", ""

        failed = skipped = network = 0
        futures = [pool.submit(one, e) for e in todo]
        try:
            for fut in cf.as_completed(futures):
                entry, state, msg = fut.result()
                if state == "skipped":
                    skipped += 1
                elif state == "network":
                    failed += 1
                    network += 1
                    _say(str(msg) if network == 1 else msg.short, err=True)
                elif state != "ok":
                    failed += 1
                    # checksum mismatches are always named; other failures (a mirror lacking
                    # thousands of files) are shown up to MAX_SHOWN, then counted
                    if "checksum" in msg or failed - network <= MAX_SHOWN:
                        _say(msg, err=True)
        except BaseException:
            run.stop.set()
            for f in futures:
                f.cancel()
            raise
        finally:
            bar.close()
            run.cache.save()
    if skipped:
        _say(f"{spec.name}: stopped after {MAX_NETWORK_FAILURES} network failures in a row; "
             f"{skipped} files not attempted. Re-run later, or use {MIRROR_HINT}", err=True)
    bad = failed + skipped
    if bad:
        advice = (f" ({network} network failures: re-run to resume, or use {MIRROR_HINT})"
                  if network else "")
        if failed - network > MAX_SHOWN:
            advice += f" ({failed - network - MAX_SHOWN} more failures not listed)"
        _say(f"{spec.name}: {bad} of {spec.n_files} files NOT obtained{advice}", err=True)
    else:
        _say(f"{spec.name}: {spec.n_files} files verified ({len(todo)} fetched, "
             f"{spec.n_files - len(todo)} already present)")
    return bad


def _verify_files(spec: DatasetSpec, root: Path, cache: _VerifiedCache | None,
                  jobs: int = JOBS) -> list[str]:
    with cf.ThreadPoolExecutor(jobs) as pool:
        states = list(pool.map(lambda e: _check_present(e, root, cache, trust_cache=False),
                               spec.files))
    if cache:
        cache.save()
    if spec.files and all(s == "missing" for s, _ in states):
        return [f"{spec.name}: not downloaded (none of its {spec.n_files} files is under "
                f"{root}); run: {config.download_command(spec.name)}"]
    problems = []
    for entry, (state, detail) in zip(spec.files, states):
        if state == "missing":
            part = entry.dest(root).with_name(entry.dest(root).name + PART_SUFFIX)
            extra = (f" (an interrupted download left {part.name}: re-run the download to "
                     f"resume)" if part.exists() else "")
            problems.append(f"missing: {entry.path}{extra}")
        elif state == "size":
            problems.append(f"wrong size: {entry.path} ({detail})")
        elif state == "hash":
            problems.append(f"checksum mismatch: {entry.path} ({detail})")
    return problems


# --------------------------------------------------------------------------- manual datasets


def _manual(spec: DatasetSpec, root: Path, show_steps: bool) -> list[str]:
    if show_steps:
        _say(manual_steps(spec, root))
    problems, found = check_structure(spec, root)
    _say(f"Checking {spec.name} under {root}:")
    for line in found:
        _say(f"  {line}")
    for line in problems:
        _say(f"  PROBLEM: {line}", err=True)
    todo = ("follow the steps above" if show_steps else
            f"for the install steps run: python data_download.py --dataset {spec.name}")
    _say(f"{spec.name}: " + (f"{len(problems)} problem(s); {todo}" if problems else
                             "structure OK"), err=bool(problems))
    return problems


# --------------------------------------------------------------------------- public API


def verify(names: str | Iterable[str], root: str | os.PathLike | None = None, *,
           registry: Mapping[str, DatasetSpec] | None = None, jobs: int = JOBS) -> list[str]:
    """Re-hash every file of ``names`` under ``root`` (structure only for manual datasets).

    Returns readable problems (missing files, wrong sizes, checksum mismatches with expected and
    actual hash, missing folders); an empty list means everything is there and intact.
    """
    reg = get_registry(registry)
    root = config.data_root(root)
    cache = _VerifiedCache(root)
    problems: list[str] = []
    for name in check_names(names, reg):
        spec = reg[name]
        if spec.downloadable:
            problems += _verify_files(spec, root, cache, jobs)
        else:
            problems += check_structure(spec, root)[0]
    return problems


def download(names: str | Iterable[str], root: str | os.PathLike | None = None,
             mirror: str | os.PathLike | None = None, verify_only: bool = False,
             progress: bool = True, *, registry: Mapping[str, DatasetSpec] | None = None,
             jobs: int = JOBS) -> int:
    """Fetch and verify datasets; return an exit code (0: everything present and verified).

    ``root``: data root (default ``config.data_root()``: ``$SBIR_DATA_ROOT`` or ``<repo>/data``).
    ``mirror``: a folder or ``http(s)://`` base URL with the data root's layout (default
    ``$SBIR_DATA_MIRROR``; None: upstream URLs). ``verify_only``: re-hash what is present and
    report, fetch nothing. Manual datasets (``sketchy``, ``tuberlin``) print their install steps
    and check the unpacked folder structure. ``registry`` replaces the packaged registry (tests).
    """
    reg = get_registry(registry)
    names = check_names(names, reg)
    run = _Run(root=config.data_root(root), mirror=_resolve_mirror(mirror),
               cache=_VerifiedCache(config.data_root(root)), progress=progress, jobs=max(1, jobs))
    bad = []
    for name in names:
        spec = reg[name]
        if not spec.downloadable:
            if _manual(spec, run.root, show_steps=not verify_only):
                bad.append(name)
        elif verify_only:
            problems = _verify_files(spec, run.root, run.cache, run.jobs)
            for line in _clip(problems):
                _say(f"  {line}", err=True)
            _say(f"{spec.name}: " + (f"{len(problems)} problem(s)" if problems else
                                     f"all {spec.n_files} files verified"), err=bool(problems))
            if problems:
                bad.append(name)
        elif _download_files(spec, run):
            bad.append(name)
    if len(names) > 1:
        _say("summary: " + ("all OK" if not bad else f"problems with {', '.join(bad)}"),
             err=bool(bad))
    return 1 if bad else 0


def build_parser(registry: Mapping[str, DatasetSpec] | None = None) -> argparse.ArgumentParser:
    reg = get_registry(registry)
    p = argparse.ArgumentParser(
        prog="data_download.py",
        description="Download and verify the course datasets (sha256-checked, resumable).",
        epilog="Offline? Point --mirror (or $SBIR_DATA_MIRROR) at a folder or http(s):// URL "
               "laid out like the data root. sketchy-mini exists only on mirrors; sketchy and "
               "tuberlin are installed by hand (this prints the steps and checks the result).")
    p.add_argument("--dataset", action="append", default=[], choices=list(reg), metavar="NAME",
                   help="dataset to fetch (repeatable): " + ", ".join(reg))
    p.add_argument("--all", action="store_true",
                   help="all downloadable datasets: " + ", ".join(downloadable_datasets(reg)))
    p.add_argument("--root", default=None,
                   help="data root (default: $SBIR_DATA_ROOT or <repo>/data; now "
                        f"{config.data_root()})")
    p.add_argument("--mirror", default=None,
                   help="folder or http(s):// base URL laid out like the data root "
                        "(default: $SBIR_DATA_MIRROR; otherwise the upstream URLs)")
    p.add_argument("--verify", action="store_true",
                   help="re-hash what is present and report missing/bad files; fetch nothing")
    p.add_argument("--list", action="store_true", help="list the datasets and exit")
    p.add_argument("--jobs", type=int, default=JOBS, help=f"parallel transfers (default {JOBS})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None, *,
         registry: Mapping[str, DatasetSpec] | None = None) -> int:
    """``data_download.py``: see ``--help``. Returns the process exit code."""
    reg = get_registry(registry)
    parser = build_parser(reg)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error (already printed, with the choices)
        return e.code if isinstance(e.code, int) else (1 if e.code else 0)
    if args.list:
        print(format_table(reg))
        print(f"\ndata root: {config.data_root(args.root)}")
        return 0
    names = list(args.dataset)
    if args.all or (args.verify and not names):
        names = downloadable_datasets(reg) + [n for n in names if n not in
                                              downloadable_datasets(reg)]
    if not names:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: nothing to do: give --dataset NAME (one of: {', '.join(reg)}), "
              "--all, or --list", file=sys.stderr)
        return 2
    try:
        return download(names, root=args.root, mirror=args.mirror, verify_only=args.verify,
                        progress=not args.no_progress, registry=reg, jobs=args.jobs)
    except KeyboardInterrupt:
        print("\ninterrupted: partial HTTP downloads are kept as *.part and resume on the "
              "next run", file=sys.stderr)
        return 130
