"""Writing files so that a failure never leaves a half-written file or loses the previous one.

Every file the tool writes (checkpoints, metrics, plots, rasters) goes through `atomic_write`.
Torch-free, so any module can use it.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from .errors import SnnError, one_line


def _label(path: Path, what: str) -> str:
    return f"{what} {one_line(path)}" if what else one_line(path)


def check_writable(path: str | Path, what: str = "") -> Path:
    """Say in one line why `path` cannot be written, before any work is spent on its content:
    it is a folder, or a folder above it is a file. Missing folders are created later."""
    path = Path(path)
    if path.is_dir():
        raise SnnError(f"cannot write {_label(path, what)}: it is a folder")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise SnnError(f"cannot write {_label(path, what)}: {parent} is not a folder")
    return path


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def special_file_kind(path: str | Path) -> str | None:
    """What `path` is when it is neither a regular file nor a folder (a link is followed):
    "a FIFO (named pipe)", "a socket", "a character device" or "a block device". Reading
    such a file may never end (a FIFO waits for a writer, /dev/zero never stops), so only
    regular files are read. None for a regular file, a folder, or a path that cannot be
    looked at (whose reader then says why)."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    return next((kind for test, kind in _SPECIAL_KINDS if test(mode)), None)


def prepare_folder(path: str | Path, what: str = "") -> None:
    """Create the folder `path` will be written in, or say in one line why it cannot be."""
    path = check_writable(path, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SnnError(f"cannot write {_label(path, what)}: {_reason(exc)}") from None


def check_outputs(outputs: list[tuple[str | Path, str]]) -> None:
    """Say in one line, before any work is spent on them, why one of `outputs` ((path, what)
    pairs) cannot be written: as `check_writable` says, or because no file can be created in
    its folder (a file is created there and removed). Permission bits, a read-only file system
    or a full one decide that, and only trying tells (root passes permission checks that are
    not the file system's). A link is checked where it points; a device or pipe is written in
    place, so its folder needs no new file."""
    folders: dict[Path, tuple[Path, str]] = {}
    for path, what in outputs:
        path = Path(path)
        target = Path(os.path.realpath(path)) if path.is_symlink() else path
        check_writable(target, what)
        if not (target.exists() and not target.is_file()):
            folders.setdefault(target.parent, (path, what))
    for folder, (path, what) in folders.items():
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".snn-probe-", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise SnnError(f"cannot write {_label(path, what)}: no file can be created in "
                           f"folder {one_line(folder)} ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    """One line saying why a write failed. A library's own error (torch's zip writer raises
    RuntimeError on a full disk, matplotlib raises ValueError on a too-large figure) is
    reduced to its first line."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _nearly_full(folder: Path) -> bool:
    """Under 1 MiB left where the temp file was being written (it still holds its part)."""
    try:
        return shutil.disk_usage(folder).free < 2**20
    except OSError:
        return False


def _set_usual_permissions(tmp: str) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the usual permissions


def atomic_write(path: str | Path, write: Callable[[str], object], what: str = "") -> Path:
    """Call write(tmp_path) on a temp file beside `path`, then rename it into place.

    Any failure of the write (an OSError such as a full disk or a refused permission, or a
    library's own exception while writing) becomes one SnnError naming `path`
    ("cannot write {what} {path}: reason"). The temp file is removed whatever happens (an
    interruption included), and a file already at `path` stays as it was until the rename.
    A symbolic link keeps pointing where it did (the file it points at is replaced), and a
    device or pipe (/dev/null, /dev/stdout) is written in place: renaming a file onto it
    would replace the device itself.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    prepare_folder(target, what)
    if target.exists() and not target.is_file():
        return _write_in_place(path, target, write, what)
    tmp, failure = None, None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        write(tmp)
        _set_usual_permissions(tmp)
        with open(tmp, "rb") as f:  # on disk before the rename: a crash leaves old or new
            os.fsync(f.fileno())
        os.replace(tmp, target)
        tmp = None
    except SnnError:
        raise
    except Exception as exc:
        failure = _failure(path, target, what, exc)
    finally:
        if tmp is not None:
            _remove(tmp)
    if failure:
        # Raised after the handler: the failed writer, and a file it holds open, is freed with
        # the handler's exception instead of living on in this one's context.
        raise SnnError(failure)
    return path


def _write_in_place(path: Path, target: Path, write: Callable[[str], object], what: str) -> Path:
    failure = None
    try:
        write(str(target))
    except SnnError:
        raise
    except Exception as exc:
        failure = _failure(path, target, what, exc)
    if failure:
        raise SnnError(failure)
    return path


def _failure(path: Path, target: Path, what: str, exc: Exception) -> str:
    """The one line for a failed write of `path` (the file `target`)."""
    if isinstance(exc, IsADirectoryError) or target.is_dir():
        return f"cannot write {_label(path, what)}: it is a folder"
    reason = _reason(exc)
    if not isinstance(exc, OSError) and _nearly_full(target.parent):
        # A library that hides the OSError (torch's zip writer: "unexpected pos 2304 vs
        # 2198") failed on a full disk: say so rather than quote the library.
        reason = os.strerror(errno.ENOSPC)
    return f"cannot write {_label(path, what)}: {reason}"


def _remove(tmp: str) -> None:
    try:
        Path(tmp).unlink(missing_ok=True)
    except OSError:
        pass  # the write's own error is the one to report


def write_text(path: str | Path, text: str, what: str = "") -> Path:
    """`text` as UTF-8 into `path`, atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), what)
