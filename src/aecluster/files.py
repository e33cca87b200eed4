"""Safe file handling: inputs checked before they are opened, outputs written atomically and
never onto an input."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from aecluster.errors import InputError

PathLike = str | os.PathLike


def os_reason(e: OSError) -> str:
    """What an OSError means, in the words a user expects."""
    reasons = {
        errno.ENOENT: "not found",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ELOOP: "symlink loop",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EISDIR: "is a directory",
        errno.ENOSPC: "no space left on the device (disk full)",
        errno.ENAMETOOLONG: "file name too long",
        errno.EROFS: "read-only file system",
    }
    return reasons.get(e.errno, (e.strerror or str(e)).lower())


def is_special(path: PathLike) -> bool:
    """True for an existing path that is neither a regular file nor a folder (a device, FIFO)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_input_file(path: PathLike, what: str = "file") -> Path:
    """Refuse, before opening, an input that is missing, a folder, not a regular file (a FIFO
    or a device would block or never end) or unreadable."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as e:
        reason = f"{what} not found" if e.errno == errno.ENOENT else os_reason(e)
        raise InputError(f"{path}: {reason}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path}: is a directory, expected a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(
            f"{path}: is not a regular file (a FIFO, socket or device); expected a {what}"
        )
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: permission denied")
    return path


def check_output_path(path: PathLike, *, overwrite: bool = True) -> Path:
    """Refuse an output path whose folder is missing or not writable, that is a folder, or
    (unless `overwrite`) that exists already as a regular file. A device or FIFO (`/dev/null`)
    is accepted: it is written into, not replaced."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    except OSError as e:
        raise InputError(f"{path}: {os_reason(e)}") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise InputError(f"{path}: is a directory, expected a file path to write")
    if info is not None and not stat.S_ISREG(info.st_mode):
        return path
    real = Path(os.path.realpath(path))
    folder = real.parent
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{path}: {folder} is a file, not a folder")
    if not folder.is_dir():
        raise InputError(f"{path}: output folder {path.parent} does not exist")
    if not os.access(folder, os.W_OK):
        raise InputError(f"{path}: output folder {folder} is not writable (permission denied)")
    if info is not None and not overwrite:
        raise InputError(f"{path}: already exists (pass --overwrite to replace it)")
    return path


def check_output_folder(path: PathLike) -> Path:
    """Refuse an output folder that exists as a file or cannot be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: exists and is not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"{path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{path}: {existing} is not writable (permission denied)")
    return path


def refuse_overwriting_inputs(
    outputs: Iterable[PathLike], inputs: Iterable[PathLike | None]
) -> None:
    """Refuse any output that is one of the inputs: the same file by any name (symlinks,
    hard links, `..`), so that no command can replace what it reads."""
    known = []
    for p in inputs:
        if p is None:
            continue
        with contextlib.suppress(OSError):
            info = os.stat(p)
            known.append((p, (info.st_dev, info.st_ino)))
    for out in outputs:
        try:
            info = os.stat(out)
        except OSError:
            continue  # not there yet: it cannot be an input
        for p, ident in known:
            if (info.st_dev, info.st_ino) == ident and stat.S_ISREG(info.st_mode):
                raise InputError(
                    f"{out}: is also an input of this command ({p}); refusing to overwrite it"
                )


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success rename it over `path`, on failure delete it.

    A symlink is followed (its target is replaced, the link stays); a device or FIFO such as
    `/dev/null` is written into directly, never replaced.
    """
    path = Path(path)
    if is_special(path):
        yield path
        return
    target = Path(os.path.realpath(path))
    tmp = None
    try:  # from the temp file's creation on, so an interrupt at any point leaves none behind
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it the usual mode
        yield Path(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def remove_partial_writes(folder: PathLike) -> None:
    """Delete the temp files `atomic_path` left in `folder` for writes that never finished (a
    process killed, or interrupted before its cleanup ran)."""
    for partial in Path(folder).glob(".*.tmp"):
        partial.unlink(missing_ok=True)


def write_text_atomic(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_csv(path: PathLike, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    """A CSV file (values quoted where they need it), written atomically."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


@contextlib.contextmanager
def new_folder(path: PathLike) -> Iterator[Path]:
    """`mkdir -p path` for the block; if the block fails, the folders it created are removed
    again when they are still empty, so an error leaves no empty folder behind."""
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{path}: cannot create the folder ({os_reason(e)})") from None
    try:
        yield path
    except BaseException:
        for folder in created:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        raise
