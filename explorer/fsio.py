"""File-system calls that a kill or a full disk cannot half-do, and reads that a hostile file cannot hang.

Writing
    atomic_write_bytes / atomic_write_json   temp sibling `.NAME.tmp-PID`, fsync, rename over NAME
    replace_dir / or_aside                   swap a complete directory into place (renameat2 exchange, or
                                             rename-aside `.old-NAME-PID` that readers fall back to)
    remove_stale_temps                       what a killed writer left (`.NAME.tmp-PID`, `.tmp-NAME-PID`,
                                             `.old-NAME-PID`) once that PID is gone
Reading
    read_regular_bytes / check_regular       regular files only: a FIFO would block forever, /dev/zero never
                                             ends, /proc and /sys files lie about their size
    is_inside                                containment after symlinks are followed
"""
from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any


class UnsafeFileError(ValueError):
    """A path that must not be read: not a regular file, on a pseudo file system, or too large."""


# ----------------------------------------------------------------------------------------------- writing


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a directory so a rename inside it survives a power cut (best effort: not every FS supports it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    """Where `atomic_write_bytes` stages `path`: a hidden sibling named after this process."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then os.replace: readers see old or new, never half."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_AT_FDCWD, _RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>


def exchange_dirs(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:  # not glibc >= 2.28 (or not Linux)
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # the filesystem or kernel cannot exchange
        return False
    raise OSError(code, os.strerror(code), str(b))


def replace_dir(new: Path, target: Path) -> None:
    """Move the complete directory `new` to `target`, replacing an existing one (re-saving the same step,
    re-exporting) with no instant at which a kill leaves neither.

    Where the kernel can swap the two atomically, `new` then holds the old contents and is deleted;
    elsewhere the old one is first renamed aside to `.old-NAME-PID`, which readers find with
    `or_aside` (and `remove_stale_temps` moves back) if a kill lands between the two renames.
    """
    if not target.exists():
        os.rename(new, target)
        return
    if exchange_dirs(new, target):
        shutil.rmtree(new, ignore_errors=True)
        return
    aside = target.with_name(f".old-{target.name}-{os.getpid()}")
    os.rename(target, aside)
    os.rename(new, target)
    shutil.rmtree(aside, ignore_errors=True)


def or_aside(target: Path, complete_if: str) -> Path:
    """`target`, or for a missing one the `.old-` copy a killed `replace_dir` left beside it (one that
    holds the file `complete_if`).

    Read-only on purpose: a reader must not move directories under a live writer.
    """
    if target.exists():
        return target
    for aside in sorted(target.parent.glob(f".old-{target.name}-*")):
        if (aside / complete_if).is_file():
            return aside
    return target


# `.NAME.tmp-PID` (atomic_write_bytes, explorer.images.save_png), `.tmp-NAME-PID` (a directory being
# written), `.old-NAME-PID` (replace_dir's aside copy)
_TEMP_FILE = re.compile(r"\.(?P<name>.+)\.tmp-(?P<pid>\d+)")
_TEMP_DIR = re.compile(r"\.(?P<kind>tmp|old)-(?P<name>.+)-(?P<pid>\d+)")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine (this process counts as alive)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # someone else's live process; an absurd id is nobody's
    return True


def remove_stale_temps(folder: str | os.PathLike, only_for: str | None = None) -> list[str]:
    """Remove what writers killed mid-write left in `folder` (not below it); returns the names handled.

    `only_for="NAME"` limits this to the temp files and folders of NAME (in a folder that is not ours).

    Only entries whose PID is no longer running are touched, so a live writer's temp files stay. A dead
    writer's `.old-NAME-PID` is the complete previous copy of NAME: if NAME itself is missing (the kill
    fell between replace_dir's two renames) it is moved back to NAME, otherwise deleted.
    """
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    handled = []
    for entry in entries:
        match = _TEMP_DIR.fullmatch(entry.name) or _TEMP_FILE.fullmatch(entry.name)
        if match is None or pid_alive(int(match["pid"])) or only_for not in (None, match["name"]):
            continue
        path = folder / entry.name
        try:
            if entry.is_dir(follow_symlinks=False):
                original = folder / match["name"]
                if match.re is _TEMP_DIR and match["kind"] == "old" and not original.exists():
                    os.rename(path, original)
                else:
                    shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue  # e.g. another process removed it first; it is not ours to insist on
        handled.append(entry.name)
    return handled


# ----------------------------------------------------------------------------------------------- reading


def _pseudo_devices() -> set[int]:
    devices = set()
    for mount in ("/proc", "/sys"):
        try:
            devices.add(os.stat(mount).st_dev)
        except OSError:
            pass
    return devices


def _check_stat(path: Path, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode) else "not a regular file"
        raise UnsafeFileError(f"{path} is {kind}: only regular files are read")
    if st.st_dev in _pseudo_devices():
        raise UnsafeFileError(f"{path} lies on /proc or /sys: such files are never read")


def check_regular(path: str | os.PathLike) -> None:
    """Raise UnsafeFileError unless `path` (symlinks followed) is a regular file on a real file system.

    For files handed to libraries that open them by name (safetensors, torch.load); stat only, never open.
    """
    path = Path(path)
    _check_stat(path, os.stat(path))


def read_regular_bytes(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; UnsafeFileError for anything else, OSError on I/O.

    stat() first so a device is never opened at all; O_NONBLOCK so a FIFO swapped in after the stat
    does not block the open; fstat() of the opened file closes that race.
    """
    path = Path(path)
    _check_stat(path, os.stat(path))
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        _check_stat(path, st)
        if st.st_size > max_bytes:
            raise UnsafeFileError(f"{path} is {st.st_size:,} bytes, more than the {max_bytes:,} such a file may have")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise UnsafeFileError(f"{path} holds more than the {max_bytes:,} bytes such a file may have")
    return data


def is_inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether `path`, with every symlink followed, is `root` or lies under it (root resolved the same way)."""
    resolved, base = Path(path).resolve(), Path(root).resolve()
    return resolved == base or base in resolved.parents
