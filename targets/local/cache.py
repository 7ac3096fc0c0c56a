"""The memoization cache (local executor, stage 4): a content-addressed store of step outputs.

Takes a memo key (dmlc.memo's recipe over the resolved spec, image, dmlc version, `for_each` item
and input digests) and gives back a hit (outputs restored into a folder), a miss with the reason, or
stores a finished instance's outputs. Layout: `<root>/entries/<key[:2]>/<key>/{entry.json,outputs/}`.
An entry is built in `<root>/tmp/` and renamed into place, so a reader sees all of it or nothing;
per-key `fcntl` locks keep a prune from deleting an entry that another run is copying out.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
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
        lock_dir.mkdir(parents=True, exist_ok=True)
        with open(lock_dir / f"{key[:16]}.lock", "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def probe(self, key: str, max_age: float | None, now: float | None = None) -> Lookup:
        """Hit or miss (with why) without copying anything; an entry of the wrong shape is a miss."""
        path = self.entry_dir(key)
        try:
            entry = json.loads((path / "entry.json").read_text())
        except (OSError, ValueError):
            return Lookup(False, "miss: no cached result for this key")
        problem = _shape_problem(entry, key)
        if problem:
            return Lookup(False, f"miss: damaged cache entry ({problem}); recomputed", None, path)
        age = (now or time.time()) - entry["created"]
        if max_age is not None and age > max_age:
            return Lookup(False, f"miss: cached result is {_ago(age)} old, older than max_age {_ago(max_age)}", entry)
        return Lookup(True, f"hit: cached by run {entry.get('run')} {_ago(age)} ago", entry, path)

    def restore(self, key: str, max_age: float | None, dest: Path) -> Lookup:
        """On a hit, copy the outputs into `dest` (created atomically: staged, then renamed) and check them
        against the digests stored with them: an entry edited, truncated or relinked since is never
        served; it is a miss, and it is removed so that this run's result replaces it."""
        with self._lock(key, exclusive=False):
            found = self.probe(key, max_age)
            problem = "" if found.hit else found.reason if "damaged" in found.reason else None
            if found.hit and found.path is not None and found.entry is not None:
                stage = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}"
                problem = _copy_verified(found.path / "outputs", stage, found.entry)
                if not problem:
                    if dest.exists():
                        shutil.rmtree(dest)
                    os.rename(stage, dest)
                    return found
                shutil.rmtree(stage, ignore_errors=True)
        if problem:
            self._discard(key)
            reason = problem if problem.startswith("miss:") else f"miss: damaged cache entry ({problem}); recomputed"
            return Lookup(False, reason)
        return found

    def _discard(self, key: str) -> None:
        with self._lock(key, exclusive=True):
            path = self.entry_dir(key)
            if path.exists() or path.is_symlink():
                trash = self.root / "tmp" / f"trash-{uuid.uuid4().hex}"
                trash.parent.mkdir(parents=True, exist_ok=True)
                os.rename(path, trash)
                shutil.rmtree(trash, ignore_errors=True)

    def store(self, key: str, recipe: dict[str, Any], outputs_dir: Path, meta: dict[str, Any]) -> bool:
        """Copy a finished instance's outputs in; False when another run stored the same key first."""
        final = self.entry_dir(key)
        if final.exists():
            return False
        stage = self.root / "tmp" / uuid.uuid4().hex
        shutil.copytree(outputs_dir, stage / "outputs")
        entry = {"key": key, "recipe": recipe, "created": time.time(), **meta}
        write_text(stage / "entry.json", json.dumps(entry, sort_keys=True, indent=1))
        final.parent.mkdir(parents=True, exist_ok=True)
        with self._lock(key, exclusive=True):
            try:
                os.rename(stage, final)  # atomic; fails if a concurrent run got there first
            except OSError:
                shutil.rmtree(stage, ignore_errors=True)
                return False
        return True

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
            self._discard(path.name)
            removed += 1
        return removed, kept


def _shape_problem(entry: Any, key: str) -> str:
    """Why an entry.json cannot be trusted as one of ours (empty when it can)."""
    if not isinstance(entry, dict):
        return "entry.json is not an object"
    if entry.get("key") != key:
        return "entry.json names another key"
    if not isinstance(entry.get("created"), (int, float)) or isinstance(entry.get("created"), bool):
        return "no creation time"
    kinds, values, digests = entry.get("kinds"), entry.get("values"), entry.get("digests")
    if not (isinstance(kinds, dict) and isinstance(values, dict) and isinstance(digests, dict)):
        return "no outputs record"
    if set(kinds) != set(digests) or any(kinds[n] == "param" and n not in values for n in kinds):
        return "outputs record incomplete"
    changed = [n for n in kinds if kinds[n] == "param" and digest_value(values[n]) != digests[n]]
    return f"value of `{changed[0]}` changed" if changed else ""


def _copy_verified(source: Path, stage: Path, entry: dict[str, Any]) -> str:
    """Copy the outputs without following links, then compare each artifact with its digest."""
    if source.is_symlink() or not source.is_dir():
        return "outputs folder replaced"
    try:
        shutil.copytree(source, stage, symlinks=True)
    except OSError as exc:
        return f"outputs unreadable: {exc.strerror or exc}"
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
