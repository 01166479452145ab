"""The checks an SQLite file passes before it is opened, and the lock that keeps it to one process.

Two processes on one file would both assign sequence numbers and both deliver the pending events,
so the second one is refused at start with a clear message (PostgreSQL is the multi-process
backend). The checks come first: ``--db /dev/null`` run as root must not change the mode of a
device, nor ``--db notes.txt`` that of someone's notes.
"""

from __future__ import annotations

import fcntl
import os
import stat

from webhook_kit.errors import ConfigError

SQLITE_HEADER = b"SQLite format 3\x00"


def lock(path: str) -> int:
    """Hold an exclusive lock on ``<path>.lock`` for as long as the store is open.

    The kernel releases the lock when the process ends, however it ends, so a crash never leaves
    a stale lock behind.
    """
    lock_path = path + ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip()
        os.close(fd)
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise ConfigError(
            f"database {path} is in use by another webhook-kit process{who}; one process at a "
            "time may use an SQLite file (use PostgreSQL, --db postgresql://..., for several)"
        ) from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def check_file(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"cannot open database {path}: not a regular file")


def prepare_file(path: str) -> None:
    """Check that ``path`` is absent, or a regular file that is empty or an SQLite database,
    before anything changes it; then make it the owner's alone.

    The webhook settings include the client secret, so the file is mode 0600 (SQLite gives its
    -wal and -shm files the same mode).
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags, 0o600)
    try:
        st = os.fstat(fd)  # the file actually opened, not the name checked a moment ago
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"cannot open database {path}: not a regular file")
        if st.st_size and os.pread(fd, len(SQLITE_HEADER), 0) != SQLITE_HEADER:
            raise ConfigError(f"cannot open database {path}: not an SQLite database")
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
