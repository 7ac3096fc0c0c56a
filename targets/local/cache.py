"""The memoization cache (local executor, stage 4): a content-addressed store of step outputs.

Takes a memo key (dmlc.memo's recipe over the resolved spec, image, dmlc version, `for_each` item
and input digests) and gives back a hit (outputs restored into a folder), a miss with the reason, or
stores a finished instance's outputs. Layout: `<root>/entries/<key[:2]>/<key>/{entry.json,outputs/}`.
An entry is built in `<root>/tmp/` and renamed into place, so a reader sees all of it or nothing;
per-key `fcntl` locks keep a prune from deleting an entry that another run is copying out.
The cache only ever saves work: a cache it cannot read or write (read-only, full disk) is a miss or a
result not stored, with a warning, never a failed step; an entry that cannot be trusted is a miss.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import stat
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmlc.atomic import write_text


def digest_path(path: Path) -> str:
    """sha256 over a file, or over a folder's relative paths and file contents in sorted order."""
    h = hashlib.sha256()
    if path.is_file():
        _feed(h, path)
        return "sha256:" + h.hexdigest()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(item.relative_to(path).as_posix().encode() + b"\0")
        _feed(h, item)
    return "sha256:" + h.hexdigest()


def _feed(h: Any, path: Path) -> None:
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)


def digest_value(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Lookup:
    hit: bool
    reason: str
    entry: dict[str, Any] | None = None
    path: Path | None = None


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def entry_dir(self, key: str) -> Path:
        return self.root / "entries" / key[:2] / key

    @contextlib.contextmanager
    def _lock(self, key: str, exclusive: bool) -> Iterator[None]:
        lock_dir = self.root / "locks"
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            handle = open(lock_dir / f"{key[:16]}.lock", "a+")  # noqa: SIM115 (closed below)
        except OSError as exc:
            if exclusive or exc.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            yield  # a cache this run cannot write: nor can anyone prune it under us from here
            return
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def probe(self, key: str, max_age: float | None, now: float | None = None) -> Lookup:
        """Hit or miss (with why) without copying anything; an entry of the wrong shape is a miss."""
        path = self.entry_dir(key)
        if not path.exists() and not path.is_symlink():
            return Lookup(False, "miss: no cached result for this key")
        try:
            entry = json.loads((path / "entry.json").read_bytes())
        except (OSError, ValueError, RecursionError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not JSON"
            return Lookup(False, f"miss: damaged cache entry (entry.json unreadable: {why}); recomputed", None, path)
        problem = _shape_problem(entry, key)
        if problem:
            return Lookup(False, f"miss: damaged cache entry ({problem}); recomputed", None, path)
        age = (now or time.time()) - entry["created"]
        if max_age is not None and age > max_age:
            return Lookup(False, f"miss: cached result is {_ago(age)} old, older than max_age {_ago(max_age)}", entry)
        return Lookup(True, f"hit: cached by run {entry.get('run')} {_ago(age)} ago", entry, path)

    def restore(self, key: str, max_age: float | None, dest: Path, kinds: dict[str, str] | None = None) -> Lookup:
        """On a hit, copy the outputs into `dest` (created atomically: staged, then renamed) and check them
        against the digests stored with them and the step's output `kinds`: an entry edited, truncated or
        relinked since is never served; it is a miss, and it is removed so that this run's result
        replaces it. A cache that cannot be read, or a `dest` that cannot be written, is a plain miss."""
        try:
            with self._lock(key, exclusive=False):
                found = self._restore_locked(key, max_age, dest, kinds)
        except OSError as exc:
            return Lookup(False, f"miss: cache unavailable ({_why(exc)}); recomputed")
        if found.hit or "damaged" not in found.reason:
            return found
        try:
            self._discard(key)
        except OSError as exc:
            _warn(f"cannot remove the damaged cache entry {self.entry_dir(key)}: {_why(exc)}")
        return found

    def _restore_locked(self, key: str, max_age: float | None, dest: Path, kinds: dict[str, str] | None) -> Lookup:
        found = self.probe(key, max_age)
        if not (found.hit and found.path is not None and found.entry is not None):
            return found
        if kinds is not None and found.entry["kinds"] != kinds:
            return _damaged("its outputs are not the step's outputs")
        stage = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}"
        try:
            problem = _copy_verified(found.path / "outputs", stage, found.entry)
            if not problem:
                if dest.exists():
                    shutil.rmtree(dest)
                os.rename(stage, dest)
                return found
        except OSError as exc:  # writing `dest`: a full or read-only disk is no fault of the entry
            if _environment(exc, stage):
                return Lookup(False, f"miss: cannot restore the cached result ({_why(exc)}); recomputed")
            problem = f"outputs unreadable: {_why(exc)}"
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        return _damaged(problem)

    def _discard(self, key: str) -> None:
        with self._lock(key, exclusive=True):
            path = self.entry_dir(key)
            if path.exists() or path.is_symlink():
                trash = self.root / "tmp" / f"trash-{uuid.uuid4().hex}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.rename(path, trash)
                shutil.rmtree(trash, ignore_errors=True)

    def store(self, key: str, recipe: dict[str, Any], outputs_dir: Path, meta: dict[str, Any]) -> bool:
        """Copy a finished instance's outputs in; False when another run stored the same key first, or
        when the cache cannot be written (full disk, read-only): a warning, and the step's result stands."""
        final = self.entry_dir(key)
        if final.exists():
            return False
        stage = self.root / "tmp" / uuid.uuid4().hex
        try:
            shutil.copytree(outputs_dir, stage / "outputs")
            entry = {"key": key, "recipe": recipe, "created": time.time(), **meta}
            write_text(stage / "entry.json", json.dumps(entry, sort_keys=True, indent=1))
            final.parent.mkdir(parents=True, exist_ok=True)
            with self._lock(key, exclusive=True):
                os.rename(stage, final)  # atomic; fails if a concurrent run got there first
            return True
        except OSError as exc:
            if not final.exists():
                step = f"step `{meta.get('step')}`" if meta.get("step") else "a step"
                _warn(f"{step}'s result was not cached in {self.root}: {_why(exc)}; the step's result stands")
            return False
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def entries(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        """Every entry that is sound (a damaged one is skipped here, and removed by `prune`)."""
        for path, entry in self._all():
            if not _shape_problem(entry, path.name):
                yield path, entry

    def _all(self) -> Iterator[tuple[Path, Any]]:
        for path in sorted((self.root / "entries").glob("*/*")):
            try:
                yield path, json.loads((path / "entry.json").read_text())
            except (OSError, ValueError):
                yield path, None

    def prune(self, older_than: float, now: float | None = None) -> tuple[int, int]:
        """Delete entries older than `older_than` seconds, and damaged ones; returns (removed, kept)."""
        now = now or time.time()
        removed = kept = 0
        for path, entry in list(self._all()):
            if not _shape_problem(entry, path.name) and now - entry["created"] <= older_than:
                kept += 1
                continue
            try:
                self._discard(path.name)
                removed += 1
            except OSError as exc:
                _warn(f"cannot remove the cache entry {path}: {_why(exc)}")
                kept += 1
        return removed, kept


def _shape_problem(entry: Any, key: str) -> str:
    """Why an entry.json cannot be trusted as one of ours (empty when it can)."""
    if not isinstance(entry, dict):
        return "entry.json is not an object"
    if entry.get("key") != key:
        return "entry.json names another key"
    created = entry.get("created")
    if not isinstance(created, (int, float)) or isinstance(created, bool) or not math.isfinite(created):
        return "no creation time"
    kinds, values, digests = entry.get("kinds"), entry.get("values"), entry.get("digests")
    if not (isinstance(kinds, dict) and isinstance(values, dict) and isinstance(digests, dict)):
        return "no outputs record"
    if set(kinds) != set(digests) or any(kinds[n] == "param" and n not in values for n in kinds):
        return "outputs record incomplete"
    try:
        changed = [n for n in kinds if kinds[n] == "param" and digest_value(values[n]) != digests[n]]
    except (RecursionError, ValueError):
        return "values unreadable"
    return f"value of `{changed[0]}` changed" if changed else ""


def _copy_verified(source: Path, stage: Path, entry: dict[str, Any]) -> str:
    """Copy the outputs without following links, then compare each artifact with its digest."""
    if source.is_symlink() or not source.is_dir():
        return "outputs folder replaced"
    odd = _special_file(source)
    if odd:
        return f"`{odd}` inside the outputs is not a file"
    shutil.copytree(source, stage, symlinks=True)  # an OSError is for the caller to judge
    if any(p.is_symlink() for p in [stage, *stage.rglob("*")]):
        return "a link inside the outputs"
    for name, kind in entry["kinds"].items():
        if kind != "artifact":
            continue
        if not (stage / name).exists():
            return f"output `{name}` missing"
        if digest_path(stage / name) != entry["digests"][name]:
            return f"output `{name}` changed"
    return ""


def _special_file(folder: Path) -> str:
    """The first thing under `folder` that is neither a folder, a file nor a link (a FIFO or a device
    would block the copy, or never end it)."""
    for top, _, names in os.walk(folder):
        for name in names:
            mode = os.lstat(os.path.join(top, name)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
                return os.path.relpath(os.path.join(top, name), folder)
    return ""


def _damaged(problem: str) -> Lookup:
    return Lookup(False, f"miss: damaged cache entry ({problem}); recomputed")


def _environment(exc: OSError, where: Path) -> bool:
    """Whether copying into `where` failed for want of space or of a writable disk (not the entry's fault)."""
    codes = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
    if exc.errno in codes or any(f"[Errno {code}]" in str(exc) for code in codes):  # str: copytree's list
        return True
    try:
        st = os.statvfs(where.parent)
    except OSError:
        return False
    return st.f_bavail == 0 or bool(st.f_flag & os.ST_RDONLY)


def _why(exc: OSError) -> str:
    """An OSError in a few words (shutil.Error, raised by copytree, carries a list of them)."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        first = str(exc.args[0][0][-1])  # "[Errno 28] No space left on device: 'a' -> 'b'"
        found = re.match(r"\[Errno \d+\] ([^:]+)", first)
        return found.group(1) if found else first
    return f"{exc.strerror}: {exc.filename}" if exc.strerror and exc.filename else exc.strerror or str(exc)


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.1f}s"


def recipe_diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two recipes differ (why a key changed)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += recipe_diff(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if old == new else [prefix or "(whole recipe)"]
