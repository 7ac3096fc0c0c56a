"""Safe file writes (used by every stage that writes, and by the CLI's `-o`).

A regular file is written atomically: a temp file in the same folder, fsync, rename, so a reader
never sees a half-written file and a crash leaves either the old file or the new one; the old
file's permission bits are kept. A symlink is followed (its target is replaced, the link stays);
a device, FIFO or socket (`-o /dev/null`) is written in place, never replaced; a folder is an error.
`write_output` is the CLI's front door: it turns an OSError into DML201 / DML203.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dmlc.diagnostics.model import DmlError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def write_bytes(path: Path, data: bytes, *, parents: bool = True) -> None:
    """Write `data` to `path` (see the module doc); `parents` creates missing folders first."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if mode is not None and not stat.S_ISREG(mode):
        _write_in_place(target, data)
        return
    if parents:
        target.parent.mkdir(parents=True, exist_ok=True)
    _replace(target, data, None if mode is None else stat.S_IMODE(mode))


def write_text(path: Path, text: str, *, parents: bool = True) -> None:
    write_bytes(path, text.encode("utf-8"), parents=parents)


def _write_in_place(path: Path, data: bytes) -> None:
    """A device, FIFO or socket: open it for writing (no create, no truncate) and write everything."""
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes, mode: int | None) -> None:
    """Temp file next to `path`, fsync, rename over it; `mode` (the old file's bits) is kept."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _new_file_mode() if mode is None else mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_file_mode() -> int:
    """0666 less the umask, as `open()` would create it (mkstemp's own 0600 surprises a user)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o600


def write_output(output: str, data: bytes | str) -> None:
    """The CLI's `-o OUT`: write `data` (no folder is created); an OSError becomes DML201 or DML203."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    try:
        write_bytes(Path(output), raw, parents=False)
    except OSError as exc:
        raise output_error(output, exc) from None


def output_error(output: str, exc: OSError) -> DmlError:
    """The DmlError for an output that could not be written: DML203 for a full disk, else DML201."""
    from dmlc.diagnostics.catalogue import DML201, DML203
    from dmlc.diagnostics.model import Diagnostic, DmlError, Label

    reason = exc.strerror or str(exc)
    if exc.errno in NO_SPACE:
        help_ = "free some space on that device, or write somewhere else with -o"
        diag = Diagnostic(DML203, f"cannot write `{output}`: {reason}", Label(None), help=help_)
    else:
        diag = Diagnostic(DML201, f"cannot write `{output}`: {reason}", Label(None), help=_help(output, exc))
    return DmlError([diag])


def _help(output: str, exc: OSError) -> str:
    folder = os.path.dirname(output) or "."
    helps = {
        errno.ENOENT: f"the folder `{folder}` does not exist: create it first, or choose another path",
        errno.EACCES: "you may not write there: choose another path, or change its permissions",
        errno.EPERM: "you may not write there: choose another path, or change its permissions",
        errno.EISDIR: f"`{output}` is a folder: give a file name, e.g. `{os.path.join(output, 'out.yaml')}`",
        errno.EROFS: "that file system is read-only: choose a path on a writable one",
    }
    return helps.get(exc.errno or 0, "check the path, and that you can write there")
