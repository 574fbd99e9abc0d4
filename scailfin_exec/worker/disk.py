# Saying which file system is full: a write that failed with ENOSPC (or a file that never
# appeared) is named with the file system holding it and what is left there, so that a physicist
# reads "the file system of the run directory is full", not a bare errno. Standard library only,
# Python >= 3.6 (the shim carries it).

import errno
import os


def full_note(*paths: str) -> str:
    """' (the file system holding DIR is full: N bytes free)' for the first of paths whose nearest
    existing directory has (almost) no room left, else ''."""
    for path in paths:
        note = _full(path)
        if note:
            return note
    return ""


def _full(path: str) -> str:
    directory = os.path.dirname(os.path.abspath(path)) if not os.path.isdir(path) else path
    while directory and not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    try:
        st = os.statvfs(directory)
    except OSError:
        return ""
    free = st.f_bavail * st.f_frsize
    if free >= 64 * 1024 and st.f_favail != 0:
        return ""
    what = "{} bytes free".format(free) if st.f_favail != 0 else "no inodes free"
    return " (the file system holding {} is full: {})".format(directory, what)


def said(e: OSError, path: str) -> str:
    """An OSError from writing path, in words that name path and, when it is full, its file system."""
    where = e.filename or path
    text = "cannot write {}: {}".format(where, e.strerror or e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        text += full_note(where) or " (its file system, or the user's quota there, is full)"
    return text


def write_whole(path: str, text: str, mode: int = 0o600) -> None:
    """Write text to path whole or not at all: a temporary file beside it, renamed over it; on any
    error (a full file system) the temporary file is removed and the error raised."""
    tmp = "{}.tmp-{}".format(path, os.getpid())
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
