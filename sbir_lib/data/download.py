"""Verified, resumable downloads of the datasets the registry (:mod:`sbir_lib.data.registry`) lists.

Taught in: ``notebooks/00_data_and_domain_gap.ipynb`` (where the data comes from, and why every byte is
checked). Used by ``data_download.py`` (and the ``sbir-download`` console script): :func:`main`.

How a file is fetched: from ``<mirror>/<path>`` when a mirror is given (a folder or an ``http(s)://`` base URL
with the data root's layout), else from its upstream URL, by :mod:`sbir_lib.data.transfer` (into ``<dest>.part``,
hashed on the way, renamed only when size and SHA-256 match; a network failure keeps the ``.part`` and the next
run resumes it with an HTTP Range request). Verified hashes are remembered in ``<root>/.verified.json`` (keyed
by path, size and mtime) so re-runs do not re-hash everything; :func:`verify` always re-hashes. Manual datasets
(``sketchy``, ``tuberlin``) get their install steps printed and their folder structure checked.

When something fails the user gets one line per dataset: how many files were not obtained and why, and the
command that fixes it (repeating the ``--root``/``--mirror`` given). Network failures: re-run to resume, or
(without a mirror) use one; with a mirror, the mirror that failed is named. Disk failures (full, read-only,
file too large) name the path, say to free space or choose ``--root``, and stop the run; the root is checked
for writing and free space before the first transfer. Folders made for files that all failed are removed.
Ctrl-C stops every transfer at once. Progress bars: :mod:`sbir_lib.core.progress` (``$SBIR_PROGRESS``).

Python API::

    from sbir_lib.data import download as dl
    dl.download(["qmul-shoes"], mirror="/path/to/mirror")   # -> exit code (0 = all verified)
    dl.verify(["qmul-shoes"])                      # -> list of problems ([] = all good)
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import os
import shlex
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sbir_lib.core import config
from sbir_lib.core.io import file_in_the_way, sha256_file, write_json_atomic
from sbir_lib.core.progress import ENV_VAR as PROGRESS_ENV_VAR
from sbir_lib.core.progress import progress_bar
from sbir_lib.data.registry import (
    DatasetSpec,
    FileEntry,
    check_names,
    check_structure,
    downloadable_datasets,
    format_table,
    get_registry,
    manual_steps,
    mib,
)
from sbir_lib.data.transfer import (
    CHUNK,
    MIN_RATE,
    RATE_WINDOW_S,
    TIMEOUT_S,
    Cancelled,
    CreatedDirs,
    DownloadError,
    IntegrityError,
    Limits,
    NetworkError,
    SourceMissingError,
    StopSignal,
    WorkerPool,
    WriteError,
    check_writable,
    fetch_file,
    part_path,
)

__all__ = [
    "DownloadError",
    "IntegrityError",
    "NetworkError",
    "SourceMissingError",
    "WriteError",
    "build_parser",
    "download",
    "main",
    "verify",
]

JOBS = 8                    # files fetched in parallel (thousands of small photos)
MAX_SHOWN = 20  # failure messages listed per dataset (checksum mismatches always are)
MAX_NETWORK_FAILURES = 5    # in a row: stop trying the rest of a dataset
CACHE_NAME = ".verified.json"
MIRROR_HINT = "--mirror DIR_OR_URL"
NO_UPSTREAM = "{name} has no public upstream; obtain it from a mirror: " + MIRROR_HINT


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
                raise TypeError(f"{self.path} does not hold a JSON object")
        except (OSError, ValueError, TypeError):
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
        # a space (or other unsafe character) in the base path is the user's literal folder name: percent-encode
        # it, never let urllib refuse it as if the network had failed (issue 26 item 6)
        parts = urllib.parse.urlsplit(text)
        text = urllib.parse.urlunsplit(parts._replace(path=urllib.parse.quote(urllib.parse.unquote(parts.path))))
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


# --------------------------------------------------------------------------- output


def _say(msg: str, err: bool = False) -> None:
    from tqdm.auto import tqdm

    tqdm.write(msg, file=sys.stderr if err else sys.stdout)


def _clip(lines: list[str], limit: int = 20) -> list[str]:
    return lines if len(lines) <= limit else lines[:limit] + [f"... and {len(lines) - limit} more"]


def _command(names: Iterable[str], root: str | None = None, mirror: str | None = None) -> str:
    """The ``data_download.py`` command line for ``names`` (``--root``/``--mirror`` when given)."""
    parts = ["python", "data_download.py"]
    for name in names:
        parts += ["--dataset", name]
    if root is not None:
        parts += ["--root", root]
    if mirror is not None:
        parts += ["--mirror", mirror]
    return shlex.join(parts)


# --------------------------------------------------------------------------- file datasets


@dataclass
class _Run:
    """Shared state of one ``download`` call. ``root_arg``/``mirror_arg``: what the caller gave (repeated in
    the suggested commands; values from the environment are not, the environment still has them)."""

    root: Path
    root_arg: str | None
    mirror: str | Path | None
    mirror_arg: str | None
    cache: _VerifiedCache
    progress: bool
    jobs: int
    limits: Limits
    dirs: CreatedDirs = field(default_factory=CreatedDirs)
    write_error: WriteError | None = None  # the disk failed: nothing more is attempted

    def command(self, names: Iterable[str], *, mirror: str | None | bool = True, root: str | None = None) -> str:
        """The command that re-runs ``names``: with the caller's ``--mirror`` (``mirror=True``), another
        one (a string), or none (None); with the caller's ``--root`` unless ``root`` replaces it."""
        use = self.mirror_arg if mirror is True else (mirror or None)
        return _command(names, root if root is not None else self.root_arg, use)


@dataclass
class _Tally:
    """What happened to the files one dataset tried to fetch."""

    ok: int = 0
    network: list[NetworkError] = field(default_factory=list)
    missing: int = 0
    corrupt: int = 0
    write: int = 0
    other: int = 0
    skipped: int = 0
    listed: int = 0  # failure lines printed besides checksum mismatches (at most MAX_SHOWN)

    def breakdown(self) -> str:
        """``"12 network failures, then 413 not attempted"``: every file not obtained, counted once."""
        net = len(self.network)
        parts = [f"{n:,} {label}" for n, label in (
            (net, "network failure" if net == 1 else "network failures"), (self.missing, "missing on the source"),
            (self.corrupt, "refused: checksum mismatch"), (self.write, "not written"),
            (self.other, "other failures")) if n]
        if self.skipped:
            parts.append(f"{'then ' if parts else ''}{self.skipped:,} not attempted")
        return ", ".join(parts)


def _check_all(spec: DatasetSpec, run: _Run, trust_cache: bool):
    with cf.ThreadPoolExecutor(run.jobs) as pool:
        return list(pool.map(lambda e: _check_present(e, run.root, run.cache, trust_cache), spec.files))


def _part_bytes(entries: Iterable[FileEntry], root: Path) -> int:
    """Bytes the leftover ``.part`` files of ``entries`` hold that a resumed transfer keeps (one longer than its file
    is deleted and fetched again, so it counts nothing): neither fetched again nor new on disk."""
    total = 0
    for e in entries:
        with contextlib.suppress(OSError):
            n = part_path(e.dest(root)).stat().st_size
            total += n if n <= e.size else 0
    return total


def _write_failure(run: _Run, names: list[str], e: WriteError) -> str:
    """The sentence for a disk failure: what failed, what to do, the command to run afterwards."""
    root = "DIR" if e.kind == "read-only" else None
    return f"{e}: {e.advice()}; then re-run: {run.command(names, root=root)}"


def _download_files(spec: DatasetSpec, run: _Run) -> int:
    """Fetch what is missing or wrong; return the number of files not obtained."""
    if run.write_error is not None:
        _say(f"{spec.name}: not attempted (writing to the data root failed, see above); after fixing that "
             f"re-run: {run.command([spec.name])}", err=True)
        return spec.n_files
    states = _check_all(spec, run, trust_cache=True)
    todo = []
    for entry, (state, detail) in zip(spec.files, states):
        if state != "ok":
            todo.append(entry)
            if state in ("size", "hash"):  # nothing corrupt keeps its final name, even if the re-fetch fails
                try:
                    entry.dest(run.root).unlink(missing_ok=True)
                    _say(f"{entry.path}: present but wrong ({detail}); deleted, fetching it again")
                except OSError as e:
                    _say(f"{entry.path}: present but wrong ({detail}) and cannot be deleted ({e}); delete it",
                         err=True)
    if not todo:
        _say(f"{spec.name}: all {spec.n_files} files present and verified under {run.root}")
        return 0
    if run.mirror is None and any(e.url is None for e in todo):
        _say(NO_UPSTREAM.format(name=spec.name) + f", e.g. {run.command([spec.name], mirror='DIR_OR_URL')} "
             "(or set $SBIR_DATA_MIRROR)", err=True)
        return len(todo)
    if isinstance(run.mirror, Path) and not run.mirror.is_dir():
        _say(f"{spec.name}: the mirror folder {run.mirror} does not exist: give an existing folder or an "
             f"http(s):// URL, e.g. {run.command([spec.name], mirror='DIR_OR_URL')}", err=True)
        return len(todo)
    try:
        check_writable(run.root, run.dirs, sum(e.size for e in todo) - _part_bytes(todo, run.root))
    except WriteError as e:
        run.write_error = e
        run.dirs.remove_empty()
        _say(f"{spec.name}: nothing downloaded: {_write_failure(run, [spec.name], e)}", err=True)
        return len(todo)

    where = run.mirror if run.mirror is not None else "upstream"
    kept = _part_bytes(todo, run.root)  # partial files resume: only the rest is fetched
    _say(f"{spec.name}: fetching {len(todo)} of {spec.n_files} files "
         f"({mib(sum(e.size for e in todo) - kept)}" + (f" left; {mib(kept)} already kept in .part files"
                                                      if kept else "") + f") from {where}")
    bar = progress_bar(total=sum(e.size for e in todo), desc=spec.name, unit="B", unit_scale=True,
                       unit_divisor=1024, disable=not run.progress, dynamic_ncols=True, leave=True)
    lock = threading.Lock()
    in_a_row = [0]
    give_up = threading.Event()
    stop = StopSignal()

    def on_bytes(n: int) -> None:
        with lock:
            bar.update(n)

    def one(entry: FileEntry):
        if give_up.is_set() or stop.is_set():
            return entry, "skipped", None
        try:
            fetch_file(entry, run.root, _source_of(entry, run.mirror), on_bytes, stop, run.limits, run.dirs)
        except Cancelled:
            return entry, "skipped", None
        except NetworkError as e:
            with lock:
                in_a_row[0] += 1
                if in_a_row[0] >= MAX_NETWORK_FAILURES:
                    give_up.set()
            return entry, "network", e
        except WriteError as e:  # the disk, not the network: stop everything
            give_up.set()
            return entry, "write", e
        except IntegrityError as e:
            return entry, "corrupt", e
        except SourceMissingError as e:
            return entry, "missing", e
        except (DownloadError, OSError) as e:
            return entry, "other", DownloadError(f"{entry.path}: {e}")
        with lock:
            in_a_row[0] = 0
        with contextlib.suppress(OSError):
            run.cache.add(entry, entry.dest(run.root).stat())
        return entry, "ok", None

    t = _Tally()
    try:
        with WorkerPool(run.jobs, stop) as pool:
            for entry, state, err in pool.run(one, todo):
                if state == "ok":
                    t.ok += 1
                elif state == "skipped":
                    t.skipped += 1
                elif state == "network":
                    t.network.append(err)
                elif state == "write":
                    t.write += 1
                    if run.write_error is None:
                        run.write_error = err
                else:
                    setattr(t, state, getattr(t, state) + 1)
                    # checksum mismatches are always named; other failures (a mirror lacking thousands
                    # of files) are shown up to MAX_SHOWN, then counted
                    if state == "corrupt" or t.listed < MAX_SHOWN:
                        t.listed += state != "corrupt"
                        _say(str(err), err=True)
    finally:
        bar.close()
        run.cache.save()
        run.dirs.remove_empty()
    return _report(spec, run, t, len(todo))


def _report(spec: DatasetSpec, run: _Run, t: _Tally, n_todo: int) -> int:
    """Print the one closing line of a dataset; return the number of files not obtained."""
    bad = n_todo - t.ok
    if not bad:
        _say(f"{spec.name}: {spec.n_files} files verified ({n_todo} fetched, "
             f"{spec.n_files - n_todo} already present)")
        return 0
    head = f"{spec.name}: {bad:,} of {spec.n_files:,} files NOT obtained ({t.breakdown()})"
    retry = run.command([spec.name])
    if t.write:
        msg = f"{head}. Stopped: {_write_failure(run, [spec.name], run.write_error)}"
    elif t.network:
        first = t.network[0].short
        if run.mirror is not None:
            msg = (f"{head}. The mirror {run.mirror} failed, first error: {first}. Check that it is up, or "
                   f"choose another with --mirror; then re-run (partial files resume): {retry}")
        else:
            msg = (f"{head}. Network failure, first error: {first}. Offline? Fetch from a mirror instead: "
                   f"{run.command([spec.name], mirror='DIR_OR_URL')} (or set $SBIR_DATA_MIRROR). Otherwise "
                   f"re-run later (partial files resume): {retry}")
    elif t.missing and run.mirror is not None:
        upstream = all(e.url for e in spec.files)
        msg = (f"{head}. The mirror {run.mirror} lacks files (listed above): use a complete mirror with --mirror"
               + (f", or fetch them upstream: {run.command([spec.name], mirror=None)}" if upstream else
                  f"; then re-run: {run.command([spec.name], mirror='DIR_OR_URL')}"))
    else:
        msg = (f"{head}. The source sent wrong or no data (listed above): re-run later ({retry}), or fetch from "
               f"a mirror: {run.command([spec.name], mirror='DIR_OR_URL')}")
    _say(msg, err=True)
    return bad


def _verify_files(spec: DatasetSpec, root: Path, cache: _VerifiedCache | None, jobs: int = JOBS,
                  command: str | None = None) -> list[str]:
    """Re-hash ``spec``'s files; ``command`` is the download command named in the problems."""
    command = command or _command([spec.name])
    with cf.ThreadPoolExecutor(jobs) as pool:
        states = list(pool.map(lambda e: _check_present(e, root, cache, trust_cache=False),
                               spec.files))
    if cache:
        cache.save()
    if spec.files and all(s == "missing" for s, _ in states):
        return [f"{spec.name}: not downloaded (none of its {spec.n_files} files is under "
                f"{root}); run: {command}" + ("" if "--mirror" in command else f" (add {MIRROR_HINT} offline)")]
    problems = []
    for entry, (state, detail) in zip(spec.files, states):
        if state == "missing":
            part = part_path(entry.dest(root))
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
    actual hash, missing folders); an empty list means everything is there and intact. A dataset
    not downloaded at all names the command that fetches it (with this ``root`` when one is given).
    """
    reg = get_registry(registry)
    root_arg = None if root is None else os.fspath(root)
    root = config.data_root(root)
    cache = _VerifiedCache(root)
    problems: list[str] = []
    for name in check_names(names, reg):
        spec = reg[name]
        if spec.downloadable:
            problems += _verify_files(spec, root, cache, jobs, _command([name], root_arg))
        else:
            problems += check_structure(spec, root)[0]
    return problems


def download(names: str | Iterable[str], root: str | os.PathLike | None = None,
             mirror: str | os.PathLike | None = None, verify_only: bool = False,
             progress: bool = True, *, registry: Mapping[str, DatasetSpec] | None = None,
             jobs: int = JOBS, timeout: float = TIMEOUT_S, min_rate: float = MIN_RATE,
             rate_window: float = RATE_WINDOW_S) -> int:
    """Fetch and verify datasets; return an exit code (0: everything present and verified).

    ``root``: data root (default ``config.data_root()``: ``$SBIR_DATA_ROOT`` or ``<repo>/data``).
    ``mirror``: a folder or ``http(s)://`` base URL with the data root's layout (default
    ``$SBIR_DATA_MIRROR``; None: upstream URLs). ``verify_only``: re-hash what is present and
    report, fetch nothing. Manual datasets (``sketchy``, ``tuberlin``) print their install steps
    and check the unpacked folder structure. ``registry`` replaces the packaged registry (tests).
    ``progress``: False never draws bars; True draws them where someone sees them
    (:mod:`sbir_lib.core.progress`). A transfer fails (network failure, resumable) after ``timeout``
    seconds without a byte, or when it averages under ``min_rate`` bytes/s over ``rate_window`` seconds.
    """
    reg = get_registry(registry)
    names = check_names(names, reg)
    data_root = config.data_root(root)
    run = _Run(root=data_root, root_arg=None if root is None else os.fspath(root),
               mirror=_resolve_mirror(mirror), mirror_arg=None if mirror is None else os.fspath(mirror),
               cache=_VerifiedCache(data_root), progress=progress, jobs=max(1, jobs),
               limits=Limits(timeout=timeout, min_rate=min_rate, rate_window=rate_window))
    bad = []
    for name in names:
        spec = reg[name]
        if not spec.downloadable:
            if _manual(spec, run.root, show_steps=not verify_only):
                bad.append(name)
        elif verify_only:
            problems = _verify_files(spec, run.root, run.cache, run.jobs, run.command([name]))
            for line in _clip(problems):
                _say(f"  {line}", err=True)
            _say(f"{spec.name}: " + (f"{len(problems)} problem(s); fetch what is missing or wrong with: "
                                     f"{run.command([name])}" if problems else
                                     f"all {spec.n_files} files verified"), err=bool(problems))
            if problems:
                bad.append(name)
        elif _download_files(spec, run):
            bad.append(name)
    if len(names) > 1:
        _say("summary: " + ("all OK" if not bad else f"problems with {', '.join(bad)} (see above)"),
             err=bool(bad))
    return 1 if bad else 0


def build_parser(registry: Mapping[str, DatasetSpec] | None = None) -> argparse.ArgumentParser:
    reg = get_registry(registry)
    p = argparse.ArgumentParser(
        prog="data_download.py",
        description="Download and verify the course datasets (sha256-checked, resumable).",
        epilog="Offline? Point --mirror (or $SBIR_DATA_MIRROR) at a folder or http(s):// URL "
               "laid out like the data root. sketchy-mini exists only on mirrors; sketchy and "
               "tuberlin are installed by hand (this prints the steps and checks the result). "
               "Interrupted or failed transfers keep a *.part file and resume on the next run. "
               f"Progress bars are drawn on a terminal only; {PROGRESS_ENV_VAR}=1 forces them, "
               f"{PROGRESS_ENV_VAR}=0 hides them.")
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
    p.add_argument("--timeout", type=float, default=TIMEOUT_S, metavar="SECONDS",
                   help=f"a transfer fails after this long without a byte (default {TIMEOUT_S:g})")
    p.add_argument("--min-speed", type=float, default=MIN_RATE / 1024, metavar="KIB_PER_S",
                   help=f"a transfer fails when it averages under this over --speed-window seconds "
                        f"(default {MIN_RATE / 1024:g}; 0: no minimum)")
    p.add_argument("--speed-window", type=float, default=RATE_WINDOW_S, metavar="SECONDS",
                   help=f"the window --min-speed is averaged over (default {RATE_WINDOW_S:g})")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None, *,
         registry: Mapping[str, DatasetSpec] | None = None) -> int:
    """``data_download.py``: see ``--help``. Returns the process exit code."""
    reg = get_registry(registry)
    parser = build_parser(reg)
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a usage error (already printed, with the choices)
        return e.code if isinstance(e.code, int) else (1 if e.code else 0)
    if args.list:
        print(format_table(reg))
        print(f"\ndata root: {config.data_root(args.root)}")
        return 0
    if args.timeout <= 0 or args.min_speed < 0 or args.jobs < 1 or args.speed_window <= 0:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: --timeout and --speed-window must be > 0, --min-speed >= 0 and --jobs >= 1",
              file=sys.stderr)
        return 2
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
                        progress=not args.no_progress, registry=reg, jobs=args.jobs,
                        timeout=args.timeout, min_rate=args.min_speed * 1024, rate_window=args.speed_window)
    except (NotADirectoryError, FileExistsError) as e:  # a file where the data root needs a folder
        where = file_in_the_way(e.filename or config.data_root(args.root)) or e.filename
        print(f"error: {where} is a file where a folder is needed (on the way to {e.filename}): move it away, "
              f"or choose another data root with --root DIR", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: partial HTTP downloads are kept as *.part and resume with the same "
              f"command: {shlex.join(['python', 'data_download.py', *argv])}", file=sys.stderr)
        return 130
