"""A local store root opened once and walked name by name: the file checked is the file used.

Every key is a tuple of names under the root. Each name is opened relative to the descriptor of
the folder before it, with ``O_NOFOLLOW`` (the openat pattern), so no symbolic link is ever
followed and no check can be outrun by a rename: swapping a folder for a link between two calls
makes the second call fail, it cannot make it reach elsewhere. A regular file with more than one
name (a hard link, whose other name may lie in another region) and anything that is neither a
file nor a folder (FIFOs, sockets, devices) are refused too: :class:`Refused` says where.

Nothing here records or decides about regions; :class:`~curation.storage.store.RegionStore`
turns a :class:`Refused` into an audited refusal.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator

__all__ = ["LocalRoot", "Refused"]

DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CHUNK = 1 << 20
MAX_DEPTH = 256  # folders nested deeper than this (an attacker's, not a store's) are refused, not recursed into


class Refused(Exception):
    """A link, a file with several names or a special file where a key resolves."""

    def __init__(self, where: tuple[str, ...], what: str, target: str | None = None):
        self.where, self.what, self.target = where, what, target
        super().__init__(f"{'/'.join(where) or '.'}: {what}")


def temporary_name() -> str:
    return f".tmp-{uuid.uuid4().hex}"


class LocalRoot:
    """Descriptor-relative operations under one folder (opened once; renaming it later changes nothing)."""

    def __init__(self, path: str):
        self.fd = -1
        self.path = os.path.realpath(path)
        os.makedirs(self.path, exist_ok=True)
        self.fd = os.open(self.path, DIRECTORY)
        self.identity = _identity(os.fstat(self.fd))

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __del__(self):
        self.close()

    # ---- walking -----------------------------------------------------------------------------
    def _refuse_link(self, parent: int, where: tuple[str, ...], error: OSError) -> None:
        """Raise Refused when the name that failed to open is a link, a second name or a special file
        (ELOOP, EEXIST, ENXIO...); otherwise re-raise the error."""
        was_link = error.errno == errno.ELOOP  # with O_NOFOLLOW on one name: it was a link when opened
        try:
            info = os.stat(where[-1], dir_fd=parent, follow_symlinks=False)
        except OSError:
            if was_link:
                raise Refused(where, "a symbolic link (links are never followed)") from None
            raise error from None
        if not stat.S_ISLNK(info.st_mode):
            self.check(where, info)
            if was_link:  # swapped back since: refused all the same
                raise Refused(where, "a symbolic link (links are never followed)")
            raise error
        try:
            target = os.readlink(where[-1], dir_fd=parent)
        except OSError:
            target = None
        if target is not None and not target.startswith("/"):
            target = os.path.normpath(os.path.join(self.path, *where[:-1], target))
        raise Refused(where, "a symbolic link (links are never followed)", target) from None

    def folder(self, parts: tuple[str, ...], create: bool = False) -> int:
        """A new descriptor of the folder ``parts`` (created name by name when asked)."""
        fd = os.open(".", DIRECTORY, dir_fd=self.fd)
        try:
            for i, name in enumerate(parts):
                try:
                    child = os.open(name, DIRECTORY, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(name, 0o777, dir_fd=fd)
                    child = self._open_folder(fd, parts[: i + 1])
                except OSError as error:
                    if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    self._refuse_link(fd, parts[: i + 1], error)
                os.close(fd)
                fd = child
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _open_folder(self, parent: int, where: tuple[str, ...]) -> int:
        try:
            return os.open(where[-1], DIRECTORY, dir_fd=parent)
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            self._refuse_link(parent, where, error)
            raise

    @staticmethod
    def check(where: tuple[str, ...], info: os.stat_result) -> os.stat_result:
        """Refuse what a key must never resolve to: links, files with several names, special files."""
        if stat.S_ISLNK(info.st_mode):
            raise Refused(where, "a symbolic link (links are never followed)")
        if stat.S_ISREG(info.st_mode):
            if info.st_nlink > 1:
                raise Refused(where, f"a file with {info.st_nlink} names (a hard link; another name may lie in another region)")
        elif not stat.S_ISDIR(info.st_mode):
            raise Refused(where, "neither a file nor a folder (a FIFO, socket or device)")
        return info

    def lstat(self, parts: tuple[str, ...]) -> os.stat_result | None:
        """The checked status of ``parts``, or None when it does not exist."""
        if not parts:
            return os.fstat(self.fd)
        try:
            parent = self.folder(parts[:-1])
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return self.check(parts, os.stat(parts[-1], dir_fd=parent, follow_symlinks=False))
        except FileNotFoundError:
            return None
        finally:
            os.close(parent)

    def open(self, parts: tuple[str, ...], flags: int, create_folders: bool = False) -> int:
        """A descriptor of the regular file ``parts``; O_TRUNC is applied only after the checks."""
        parent = self.folder(parts[:-1], create=create_folders)
        truncate = flags & os.O_TRUNC
        try:
            try:
                fd = os.open(parts[-1], (flags & ~os.O_TRUNC) | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o666, dir_fd=parent)
            except FileNotFoundError:
                raise
            except OSError as error:
                self._refuse_link(parent, parts, error)
                raise
            try:
                info = self.pin(parent, parts, fd)
                if stat.S_ISDIR(info.st_mode):
                    raise IsADirectoryError(errno.EISDIR, "is a folder", "/".join(parts))
                if truncate:
                    os.ftruncate(fd, 0)
                return fd
            except BaseException:
                os.close(fd)
                raise
        finally:
            os.close(parent)

    def pin(self, parent: int, parts: tuple[str, ...], fd: int) -> os.stat_result:
        """Check what ``fd`` opened, and that the name still leads to it with no other name.

        The link count of an open file is not enough: a hard link to another region's file, put
        under this name and then replaced, leaves the descriptor on that file with one name left,
        the other region's. Nor is looking the name up again: a rename drops the replaced file's
        count before its name stops leading there (a swapping process got eu's bytes read 671 times
        in 20 s through that instant). So, with the count read first: wait out any rename or unlink
        in flight in the folder, then the name the descriptor was opened by must still exist, and
        lead to the same file. A count of one with that name alive means no other name (a count
        never lags a new name, only a removal, and removals of this name have ended)."""
        info = self.check(parts, os.fstat(fd))
        if stat.S_ISREG(info.st_mode):
            _settle(parent)
            if os.readlink(f"/proc/self/fd/{fd}") != os.path.join(os.readlink(f"/proc/self/fd/{parent}"), parts[-1]):
                raise Refused(parts, "replaced while being opened")  # the opened name is gone (" (deleted)") or moved
            try:
                there = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                raise Refused(parts, "replaced while being opened") from None
            if _identity(there) != _identity(info):
                raise Refused(parts, "replaced while being opened")
            self.check(parts, there)
        return info

    def scan(self, parts: tuple[str, ...], own_names: bool = False) -> Iterator[tuple[tuple[str, ...], os.stat_result]]:
        """Every member under the folder ``parts`` (files and folders), each checked; never follows links.

        Members that vanish while the scan runs are skipped. With ``own_names`` a file with several
        names passes when all of them lie inside the scanned folder (LanceDB's object store commits by
        linking a staging name to the final one, for an instant); it is checked once the scan is done."""
        fd = self.folder(parts)
        shared: dict[tuple[int, int], list[tuple[str, ...]]] = {}
        try:
            yield from self._scan(fd, parts, shared if own_names else None)
        finally:
            os.close(fd)
        for names in shared.values():
            self._all_names_inside(names)

    def _all_names_inside(self, names: list[tuple[str, ...]]) -> None:
        """Refuse unless the names found account for every name the file has (each looked at again now)."""
        groups: dict[tuple[int, int], list[tuple[tuple[str, ...], os.stat_result]]] = {}
        for where in names:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                parent = self.folder(where[:-1])
                try:
                    info = os.stat(where[-1], dir_fd=parent, follow_symlinks=False)
                finally:
                    os.close(parent)
                groups.setdefault((info.st_dev, info.st_ino), []).append((where, info))
        for group in groups.values():
            where, info = group[0]
            if not stat.S_ISREG(info.st_mode) or info.st_nlink > len(group):
                self.check(where, info)  # a name outside the folder (or no longer a plain file): refused

    def children(self, parts: tuple[str, ...]) -> list[tuple[tuple[str, ...], os.stat_result]]:
        """The direct members of the folder ``parts``, each checked (members that vanish are skipped)."""
        fd = self.folder(parts)
        try:
            with os.scandir(fd) as entries:
                found = sorted(entries, key=lambda e: e.name)
            members = []
            for entry in found:
                with contextlib.suppress(FileNotFoundError):
                    members.append(((*parts, entry.name), self.check((*parts, entry.name), entry.stat(follow_symlinks=False))))
            return members
        finally:
            os.close(fd)

    def _scan(self, fd: int, parts: tuple[str, ...], shared: dict | None = None):
        _deep(parts)
        with os.scandir(fd) as entries:
            children = sorted(entries, key=lambda e: e.name)
        for entry in children:
            where = (*parts, entry.name)
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if shared is not None and stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                shared.setdefault((info.st_dev, info.st_ino), []).append(where)
            else:
                self.check(where, info)
            yield where, info
            if stat.S_ISDIR(info.st_mode):
                try:
                    child = self._open_folder(fd, where)
                except FileNotFoundError:
                    continue
                try:
                    yield from self._scan(child, where, shared)
                finally:
                    os.close(child)

    # ---- changing ----------------------------------------------------------------------------
    def write(self, parts: tuple[str, ...], data) -> None:
        """Write atomically: a temporary name in the same folder, then a rename over the name.

        The name is checked afterwards to be the file written (not something put in its place)."""
        parent = self.folder(parts[:-1], create=True)
        try:
            self._refuse_existing_link(parent, parts)
            temporary = temporary_name()
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=parent)
            try:
                with open(fd, "wb", closefd=False) as handle:
                    handle.write(data)
                self._commit(parent, temporary, parent, parts[-1])
                self._same(parent, parts, os.fstat(fd))
            finally:
                os.close(fd)
        finally:
            os.close(parent)

    @staticmethod
    def _same(parent: int, parts: tuple[str, ...], ours: os.stat_result) -> None:
        """Refuse (and take away) what a rename put in place when it is not the file this store made."""
        try:
            there = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise Refused(parts, "removed while being written") from None
        if _identity(there) != _identity(ours):
            if not stat.S_ISDIR(there.st_mode):
                with contextlib.suppress(OSError):
                    os.unlink(parts[-1], dir_fd=parent)
            raise Refused(parts, "replaced while being written")

    def _refuse_existing_link(self, parent: int, parts: tuple[str, ...]) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.check(parts, os.stat(parts[-1], dir_fd=parent, follow_symlinks=False))

    def _commit(self, src_parent: int, temporary: str, dst_parent: int, name: str) -> None:
        try:
            os.rename(temporary, name, src_dir_fd=src_parent, dst_dir_fd=dst_parent)
        except BaseException:
            _remove(src_parent, temporary)
            raise

    def copy(self, src: tuple[str, ...], dst: tuple[str, ...], record: Callable[[], None]) -> None:
        """Copy a file or folder under a temporary name, call ``record``, then rename into place.

        Every member is opened with O_NOFOLLOW and checked; a refusal anywhere leaves nothing behind.
        A folder is copied to a name that must not exist yet.
        """
        if dst[: len(src)] == src:
            raise ValueError(f"cannot copy {'/'.join(src)} into itself ({'/'.join(dst)})")
        info = self.lstat(src)
        if info is None:
            raise FileNotFoundError(errno.ENOENT, "no such file or folder", "/".join(src))
        parent = self.folder(dst[:-1], create=True)
        temporary = temporary_name()
        try:
            existing = self.lstat(dst)
            if existing is not None and (stat.S_ISDIR(existing.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise FileExistsError(errno.EEXIST, "destination exists", "/".join(dst))
            if stat.S_ISDIR(info.st_mode):
                os.mkdir(temporary, 0o777, dir_fd=parent)
                try:
                    source = self.folder(src)
                    try:
                        target = self._open_folder(parent, (*dst[:-1], temporary))
                        try:
                            made = os.fstat(target)
                            self._copy_folder(source, target, src)
                        finally:
                            os.close(target)
                    finally:
                        os.close(source)
                except BaseException:
                    _remove(parent, temporary)
                    raise
            else:
                source = self.open(src, os.O_RDONLY)
                try:
                    made = self._copy_file(source, parent, temporary)
                finally:
                    os.close(source)
            try:
                record()
            except BaseException:
                _remove(parent, temporary)
                raise
            self._commit(parent, temporary, parent, dst[-1])
            self._same(parent, dst, made)
        finally:
            os.close(parent)

    def _copy_file(self, source: int, parent: int, name: str) -> os.stat_result:
        """A new file ``name`` holding the bytes of ``source``; returns its status (who it is)."""
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666, dir_fd=parent)
        try:
            _copy_bytes(source, target)
            return os.fstat(target)
        except BaseException:
            _remove(parent, name)
            raise
        finally:
            os.close(target)

    def _copy_folder(self, source: int, target: int, parts: tuple[str, ...]) -> None:
        _deep(parts)
        with os.scandir(source) as entries:
            children = list(entries)
        for entry in children:
            where = (*parts, entry.name)
            info = self.check(where, entry.stat(follow_symlinks=False))
            if stat.S_ISDIR(info.st_mode):
                os.mkdir(entry.name, 0o777, dir_fd=target)
                child, copy = self._open_folder(source, where), os.open(entry.name, DIRECTORY, dir_fd=target)
                try:
                    self._copy_folder(child, copy, where)
                finally:
                    os.close(child)
                    os.close(copy)
            else:
                try:
                    fd = os.open(entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=source)
                except OSError as error:
                    self._refuse_link(source, where, error)
                    raise
                try:
                    if not stat.S_ISREG(self.pin(source, where, fd).st_mode):
                        raise Refused(where, "changed while copying")
                    self._copy_file(fd, target, entry.name)
                finally:
                    os.close(fd)

    def move(self, src: tuple[str, ...], dst: tuple[str, ...], record: Callable[[], None]) -> None:
        """Rename within the root after checking every member; ``record`` runs before the rename.

        A folder moves only onto a name that does not exist; a file replaces a file.
        """
        info = self.lstat(src)
        if info is None:
            raise FileNotFoundError(errno.ENOENT, "no such file or folder", "/".join(src))
        if stat.S_ISDIR(info.st_mode):
            for _ in self.scan(src):  # every member checked: no link or hard link travels
                pass
        source, target = self.folder(src[:-1]), self.folder(dst[:-1], create=True)
        try:
            existing = self.lstat(dst)
            if existing is not None and (stat.S_ISDIR(existing.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise FileExistsError(errno.EEXIST, "destination exists", "/".join(dst))
            record()
            os.rename(src[-1], dst[-1], src_dir_fd=source, dst_dir_fd=target)
        finally:
            os.close(source)
            os.close(target)

    def delete(self, parts: tuple[str, ...], record: Callable[[str | None, int], None]) -> bool:
        """Remove a file or folder; ``record(sha256 or None, files)`` runs in between, or it is put back.

        The name is first renamed aside, so what is hashed and recorded is exactly what is removed.
        """
        parent = self.folder(parts[:-1])
        try:
            try:
                self.check(parts, os.stat(parts[-1], dir_fd=parent, follow_symlinks=False))
            except FileNotFoundError:
                return False
            aside = temporary_name()
            os.rename(parts[-1], aside, src_dir_fd=parent, dst_dir_fd=parent)
            try:
                info = self.check(parts, os.stat(aside, dir_fd=parent, follow_symlinks=False))
                if stat.S_ISDIR(info.st_mode):
                    files = sum(1 for _, member in self._scan_aside(parent, aside, parts) if not stat.S_ISDIR(member.st_mode))
                    digest = None
                else:
                    files, digest = 1, self._digest_aside(parent, aside, parts)
                record(digest, files)
            except BaseException:
                os.rename(aside, parts[-1], src_dir_fd=parent, dst_dir_fd=parent)
                raise
            _remove(parent, aside)
            return True
        finally:
            os.close(parent)

    def _scan_aside(self, parent: int, aside: str, parts: tuple[str, ...]):
        fd = os.open(aside, DIRECTORY, dir_fd=parent)
        try:
            yield from self._scan(fd, parts)
        finally:
            os.close(fd)

    def _digest_aside(self, parent: int, aside: str, parts: tuple[str, ...]) -> str:
        import hashlib

        fd = os.open(aside, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent)
        try:
            self.pin(parent, (*parts[:-1], aside), fd)
            digest = hashlib.sha256()
            while chunk := os.read(fd, CHUNK):
                digest.update(chunk)
            return digest.hexdigest()
        finally:
            os.close(fd)


def _deep(parts: tuple[str, ...]) -> None:
    if len(parts) > MAX_DEPTH:
        raise Refused(parts, f"folders nested deeper than {MAX_DEPTH} levels")


def _settle(folder: int) -> None:
    """Return once no rename into ``folder`` is in flight: reading a folder takes its lock, which a
    rename holds until every name it changes leads where it should."""
    with os.scandir(folder) as entries:
        next(entries, None)


def _identity(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _remove(parent: int, name: str) -> None:
    """Remove a name under a folder descriptor: a file, a link (not its target) or a whole folder."""
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(name, dir_fd=parent)  # the descriptor-based implementation: never follows links
    else:
        os.unlink(name, dir_fd=parent)


def _copy_bytes(source: int, target: int) -> None:
    offset = 0
    try:
        while sent := os.sendfile(target, source, offset, CHUNK * 8):
            offset += sent
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOSYS, errno.EXDEV) or offset:
            raise
        while chunk := os.read(source, CHUNK):
            view = memoryview(chunk)
            while view:
                view = view[os.write(target, view):]
