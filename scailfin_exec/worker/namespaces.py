# The keeper's own user, mount and PID namespaces, and the mounts it makes in them (keeper.py,
# "namespace"): read-only binds, mount points on a private layer over a read-only image. Also
# prctl for the keeper's subreaper and parent-death signals. Standard library only (ctypes), Linux.

import errno
import os
import re
import stat
from typing import List, Optional, Tuple

from .jobspec import inside

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
SYS_MOUNT_SETATTR, AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 1


class NamespaceError(Exception):
    """The namespaces or a mount could not be made: the message says which and why."""


_libc = None


def _c():
    """The C library, through ctypes (imported here: some minimal Pythons lack it, and only the
    keeper's namespaces need it); NamespaceError if there is none to ask."""
    global _libc
    if _libc is None:
        try:
            import ctypes
            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.syscall.restype = ctypes.c_long
        except (ImportError, OSError, AttributeError) as e:
            raise NamespaceError("this Python cannot call the C library (ctypes: {})".format(e))
    return _libc


def _errno() -> int:
    import ctypes
    return ctypes.get_errno()


def prctl(option: int, value: int) -> None:
    try:
        _c().prctl(option, value, 0, 0, 0)
    except NamespaceError:
        pass  # no libc to ask: the step is still stopped through the shim


def mount(source: Optional[str], target: str, fstype: Optional[str], flags: int, data: Optional[str] = None) -> None:
    def arg(text):
        return text.encode() if text is not None else None
    if _c().mount(arg(source), arg(target), arg(fstype), flags, arg(data)) != 0:
        err = _errno()
        raise NamespaceError("mount {} on {} failed: {}".format(source or fstype or "", target, os.strerror(err)))


def enter(binds: List[Tuple[str, str, bool]], mount_points: List[Tuple[str, str, bool]], image: Optional[str],
          area: Optional[str]) -> List[str]:
    """Enter new user (unless root), mount and PID namespaces (the PID one takes effect for the
    next child), mount each (source, mount point, writable) in binds under area (a tmpfs there),
    and make the (root, path, is a directory) mount points; returns notes for the record."""
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWPID | (CLONE_NEWUSER if uid != 0 else 0)
    if _c().unshare(flags) != 0:
        err = _errno()
        raise NamespaceError("cannot make the step's own user, mount and PID namespaces: {} (unprivileged user "
                          "namespaces are needed, as Charliecloud itself needs them)".format(os.strerror(err)))
    if uid != 0:  # the same user inside: files keep their owner
        for name, text in (("setgroups", "deny"), ("uid_map", "{0} {0} 1".format(uid)), ("gid_map", "{0} {0} 1".format(gid))):
            with open("/proc/self/" + name, "w") as f:
                f.write(text)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    notes = []
    if not binds and not mount_points:
        return notes
    os.makedirs(area, exist_ok=True)
    mount("tmpfs", area, "tmpfs", 0, "mode=0700")
    for source, mount_point, writable in binds:
        if os.path.isdir(source):
            os.makedirs(mount_point)
        else:
            os.makedirs(os.path.dirname(mount_point), exist_ok=True)
            open(mount_point, "w").close()
        mount(source, mount_point, None, MS_BIND | MS_REC)
        if not writable:
            _readonly(mount_point)
    in_image = [(path, is_dir) for root, path, is_dir in mount_points if root == image]
    missing = [(path, is_dir) for path, is_dir in in_image if not _in_root(image, path, is_dir)]
    if missing:
        _overlay(image, area)
        notes.append("made mount points the image lacks ({}) on a private layer over it".format(
            ", ".join(p for p, _ in missing)))
    for root, path, is_dir in mount_points:
        if root != image or (path, is_dir) in missing:
            os.makedirs(root, exist_ok=True)
            _in_root(root, path, is_dir, make=True)
    return notes


def _readonly(mount_point: str) -> None:
    """Make a bind mount read-only with everything mounted under it."""
    import ctypes

    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                    ("userns_fd", ctypes.c_uint64)]
    attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    if _c().syscall(SYS_MOUNT_SETATTR, AT_FDCWD, mount_point.encode(), AT_RECURSIVE, ctypes.byref(attr),
                    ctypes.sizeof(attr)) == 0:
        return
    if _errno() != errno.ENOSYS:  # older kernels: each mount in turn
        err = _errno()
        raise NamespaceError("cannot make {} read-only: {}".format(mount_point, os.strerror(err)))
    with open("/proc/self/mountinfo", errors="surrogateescape") as f:  # spaces and the like as \\ooo
        points = [re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4]) for line in f]
    for point in [p for p in points if inside(p, mount_point)]:
        mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY)


def _overlay(image: str, area: str) -> None:
    """A writable tmpfs layer over the image, in this mount namespace only, where mount points
    can be made (the image itself stays untouched and read-only to the step)."""
    upper, work = os.path.join(area, "upper"), os.path.join(area, "work")
    os.makedirs(upper)
    os.makedirs(work)
    real = os.path.realpath(image)

    def escaped(path):  # overlayfs splits its options at ',' and its lower layers at ':'
        return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")
    options = "lowerdir={},upperdir={},workdir={},userxattr".format(escaped(real), escaped(upper), escaped(work))
    try:
        mount("overlay", real, "overlay", 0, options)
    except NamespaceError as e:
        raise NamespaceError("cannot make the mount points the image {} lacks: {} (unprivileged overlayfs needs "
                          "Linux >= 5.11)".format(image, e))


def _in_root(root: str, path: str, is_dir: bool, make: bool = False) -> bool:
    """Whether path exists under root (an image) as a directory (or a file), looking inside root
    only (a symbolic link on the way is refused, not followed to the host); with make, create it."""
    current = os.path.realpath(root)
    parts = [p for p in path.split("/") if p]
    for number, part in enumerate(parts):
        current = os.path.join(current, part)
        last = number == len(parts) - 1
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            if not make:
                return False
            try:
                if last and not is_dir:
                    open(current, "w").close()
                else:
                    os.mkdir(current)
            except PermissionError:
                raise NamespaceError("cannot make the mount point {} in the image {}: /{} is not this user's in the "
                                     "image, so no directory can be made in it, even on a private layer (a workspace "
                                     "under a directory the image has, such as /tmp, or a runtime that makes mount "
                                     "points itself, such as Apptainer or Podman, avoids it)".format(
                                         path, root, "/".join(parts[:number])))
            continue
        if stat.S_ISLNK(info.st_mode):
            raise NamespaceError("cannot bind at {}: the image has a symbolic link at {}".format(
                path, "/" + "/".join(parts[:number + 1])))
        if not last and not stat.S_ISDIR(info.st_mode):
            raise NamespaceError("cannot bind at {}: /{} is not a directory in the image".format(
                path, "/".join(parts[:number + 1])))
        if last and stat.S_ISDIR(info.st_mode) != is_dir:
            raise NamespaceError("cannot bind a {} at {}: the image has a {} there".format(
                "directory" if is_dir else "file", path, "directory" if stat.S_ISDIR(info.st_mode) else "file"))
    return True
