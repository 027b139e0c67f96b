"""Safe filesystem access for real data: never follow a symbolic link, never leave the roots.

Strongroom runs with wide permissions, so every path it touches for a resource is opened one
component at a time with ``O_NOFOLLOW`` from a trusted base (the real path of
``STRONGROOM_DATA_ROOT`` or of an attach root). A symbolic link anywhere below the base, even one
created after a folder was attached, makes the access fail instead of escaping.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from django.conf import settings

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(ValueError):
    """A path that leaves the allowed roots, or passes through a symbolic link."""


def data_root() -> Path:
    return Path(settings.STRONGROOM_DATA_ROOT)


def attach_roots() -> list[Path]:
    return [Path(r) for r in settings.STRONGROOM_ATTACH_ROOTS]


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _trusted_bases():
    """(configured root, its real path) pairs: the data root first, then the attach roots."""
    for root in [data_root(), *attach_roots()]:
        root = Path(os.path.abspath(root))
        yield root, _real(root)


def split_under_root(path: Path) -> tuple[Path, tuple[str, ...], bool]:
    """(real base, parts below it, is_data_root) for a path under one of the trusted roots."""
    path = Path(os.path.abspath(path))
    for index, (root, real) in enumerate(_trusted_bases()):
        for base in (root, real):
            try:
                rel = path.relative_to(base)
            except ValueError:
                continue
            return real, rel.parts, index == 0
    raise UnsafePath(f"'{path}' is outside Strongroom's data root and the allowed attach roots.")


def _open_child_dir(parent_fd: int, name: str, *, create: bool, shown: str) -> int:
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
        try:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        except FileExistsError:
            pass
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise UnsafePath(f"'{shown}' is a symbolic link; Strongroom never follows links.") from exc
        if exc.errno == errno.ENOTDIR:
            # O_NOFOLLOW on a link to a directory reports ENOTDIR on some systems: tell them apart.
            info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                raise UnsafePath(f"'{shown}' is a symbolic link; Strongroom never follows links.") from exc
            raise NotADirectoryError(errno.ENOTDIR, f"'{shown}' is a file, not a folder") from exc
        raise


def open_dir(path: Path, *, create: bool = False) -> int:
    """A directory fd for ``path``, walked from its trusted base without following links.

    With ``create``, missing folders are made (only below the data root or an attach root).
    """
    base, parts, in_data_root = split_under_root(path)
    if create and in_data_root:
        os.makedirs(base, exist_ok=True)
    fd = os.open(base, DIR_FLAGS)
    walked = base
    try:
        for part in parts:
            walked = walked / part
            child = _open_child_dir(fd, part, create=create, shown=str(walked))
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def opened_dir(path: Path, *, create: bool = False):
    fd = open_dir(path, create=create)
    try:
        yield fd
    finally:
        os.close(fd)


def has_symlink_component(path: Path) -> str | None:
    """The first component of ``path`` that is a symbolic link, or None."""
    current = Path(path.anchor or "/")
    for part in path.parts[1:]:
        current = current / part
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return str(current)
        except FileNotFoundError:
            return None
    return None


def validate_attach_path(raw: str, *, kind: str) -> Path:
    """Check a path a user wants to attach and return it normalised.

    ``kind`` is "folder" or "file". The path must exist, be absolute, contain no symbolic link in
    any component, resolve strictly below one of STRONGROOM_ATTACH_ROOTS, and not lie inside
    Strongroom's own data root. Raises UnsafePath with a message for the person who typed it.
    """
    raw = (raw or "").strip()
    roots = attach_roots()
    shown_roots = ", ".join(str(r) for r in roots) or "(none configured)"
    if not raw:
        raise UnsafePath(f"Enter the full path of an existing {kind}.")
    if "\x00" in raw:
        raise UnsafePath("The path contains a NUL character.")
    if not os.path.isabs(raw):
        raise UnsafePath(f"Enter an absolute path (starting with /) below one of the allowed roots: {shown_roots}.")
    if not roots:
        raise UnsafePath(
            "Attaching existing data is turned off: no attach roots are configured. An administrator "
            "can allow folders with the STRONGROOM_ATTACH_ROOTS setting."
        )
    path = Path(os.path.normpath(raw))
    link = has_symlink_component(path)
    if link:
        raise UnsafePath(f"'{link}' is a symbolic link. Strongroom never follows symbolic links; attach the real path.")
    if not os.path.lexists(path):
        raise UnsafePath(f"'{path}' does not exist.")
    real = _real(path)
    if real != path:
        raise UnsafePath(f"'{path}' resolves to '{real}'. Attach the real path, without links or '..'.")
    inside = [r for r in (_real(root) for root in roots) if real != r and real.is_relative_to(r)]
    if not inside:
        raise UnsafePath(
            f"'{path}' is not below an allowed attach root. Allowed roots: {shown_roots}. "
            "Ask an administrator to add a root to STRONGROOM_ATTACH_ROOTS."
        )
    own = _real(data_root())
    if real == own or real.is_relative_to(own) or own.is_relative_to(real):
        raise UnsafePath(f"'{path}' overlaps Strongroom's own data folder; attach a folder outside it.")
    mode = os.lstat(real).st_mode
    if kind == "folder" and not stat.S_ISDIR(mode):
        raise UnsafePath(f"'{path}' is not a folder.")
    if kind == "file" and not stat.S_ISREG(mode):
        raise UnsafePath(f"'{path}' is not a regular file (an image file is expected).")
    return real


def remove_tree(path: Path) -> None:
    """Delete a folder and everything below it; links inside are removed, never followed."""
    import shutil

    path = Path(path)
    try:
        parent_fd = open_dir(path.parent)
    except FileNotFoundError:
        return
    try:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path.name, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)


@contextlib.contextmanager
def scratch_folder(name: str = "restore-scratch"):
    """A fresh folder of its own under ``<data root>/<name>`` (a unique name, so concurrent users never
    meet), removed with everything in it on the way out."""
    import tempfile
    import uuid

    scratch = data_root() / name
    os.close(open_dir(scratch, create=True))
    folder = tempfile.mkdtemp(prefix=f"{uuid.uuid4().hex}-", dir=str(scratch))
    try:
        yield folder
    finally:
        with contextlib.suppress(Exception):
            remove_tree(Path(folder))
