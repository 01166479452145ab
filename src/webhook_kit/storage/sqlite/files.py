"""The checks an SQLite file passes before it is opened, and the locks that keep it to one process.

Two processes on one file would both assign sequence numbers and both deliver the pending events,
so the second one is refused at start with a clear message (PostgreSQL is the multi-process
backend). The checks come first: ``--db /dev/null`` run as root must not change the mode of a
device, nor ``--db notes.txt`` that of someone's notes.
"""

from __future__ import annotations

import fcntl
import os
import stat
import sys
import threading

from webhook_kit.errors import ConfigError

SQLITE_HEADER = b"SQLite format 3\x00"

# Where an flock and SQLite's fcntl locks on one file leave each other alone. On the BSDs and
# macOS they are one lock table: an exclusive flock would keep SQLite from its own database.
_LOCK_THE_FILE = sys.platform.startswith("linux")

# The database files this process holds, by (device, inode): each with the descriptors of it to
# close once SQLite's connection to it is closed. See :func:`lock`.
_held: dict[tuple[int, int], list[int]] = {}
_held_guard = threading.Lock()


class Lock:
    """The locks :func:`lock` took, held until :meth:`release`."""

    def __init__(self, name_fd: int, key: tuple[int, int]) -> None:
        self._name_fd: int | None = name_fd
        self._key = key

    def release(self) -> None:
        """Release both locks: only once SQLite's connection to the file is closed."""
        if self._name_fd is None:
            return
        with _held_guard:
            fds = _held.pop(self._key, [])
        for fd in fds:
            os.close(fd)
        os.close(self._name_fd)
        self._name_fd = None


def lock(path: str) -> Lock:
    """Hold the file for this process, for as long as the store is open; the file is created if
    it does not exist yet (empty: a valid new SQLite database), checked, and made mode 0600.

    Two locks, both flock(2), which the kernel releases when the process ends, however it ends
    (a crash never leaves a stale lock behind):

    - on the database file itself (on Linux), so that every name of the file is refused, a hard
      link too: through one, two processes each wrote their own -wal file (SQLite names it after
      the path), and one's commits were lost. It is not enough alone: a file replaced under the
      same name while a process runs is a new inode, with the old one's -wal file.
    - on ``<path>.lock``, for those names; it holds the holder's pid for the message.

    flock rather than fcntl(2) locks: SQLite's own locks are fcntl locks, which a process holds
    per file rather than per descriptor, so one of ours would merge with them. An flock neither
    merges nor conflicts with them on Linux; but closing any descriptor of the file drops all of
    this process's fcntl locks on it, SQLite's included. So the descriptor of the database file
    is closed by :meth:`Lock.release` only, after the connection, and one opened while this
    process already holds the file is kept until then too. (Over NFS, where Linux makes an flock
    an fcntl lock, SQLite would be locked out; its WAL mode does not work there anyway.)
    """
    name_fd = _lock_name(path)
    try:
        key = _lock_file(path)
    except BaseException:
        os.close(name_fd)
        raise
    return Lock(name_fd, key)


def _lock_name(path: str) -> int:
    lock_path = path + ".lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode("ascii", "replace").strip()
        os.close(fd)
        raise _in_use(path, int(holder) if holder.isdigit() else None) from None
    except OSError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _lock_file(path: str) -> tuple[int, int]:
    """Open (or create) the database file, check it and lock it; its (device, inode)."""
    # O_CREAT: an flock needs the file, and a new database must be locked before SQLite opens it
    # (SQLite takes an empty file for a new database).
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags, 0o600)
    try:
        st = os.fstat(fd)  # the file actually opened, not the name checked a moment ago
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"cannot open database {path}: not a regular file")
    except BaseException:
        os.close(fd)
        raise
    key = (st.st_dev, st.st_ino)
    with _held_guard:
        if key in _held:  # this process has it open under another name: see lock()
            _held[key].append(fd)
            raise _in_use(path, os.getpid())
        try:
            if _LOCK_THE_FILE:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # another process's: this one has no fcntl lock on the file to lose
            raise _in_use(path, _flock_holder(st)) from None
        except BaseException:
            os.close(fd)
            raise
        _held[key] = [fd]
    try:
        _prepare(path, fd, st)
    except BaseException:
        with _held_guard:
            fds = _held.pop(key)
        for held in fds:
            os.close(held)
        raise
    return key


def _prepare(path: str, fd: int, st: os.stat_result) -> None:
    """Check that the file is empty or an SQLite database before anything changes it; then make
    it the owner's alone.

    The webhook settings include the client secret, so the file is mode 0600 (SQLite gives its
    -wal and -shm files the same mode).
    """
    if st.st_size and os.pread(fd, len(SQLITE_HEADER), 0) != SQLITE_HEADER:
        raise ConfigError(f"cannot open database {path}: not an SQLite database")
    if stat.S_IMODE(st.st_mode) != 0o600:
        os.fchmod(fd, 0o600)


def _flock_holder(st: os.stat_result) -> int | None:
    """The pid holding an flock on the file, from /proc/locks (Linux; elsewhere, no pid)."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as table:
            lines = table.read().splitlines()
    except OSError:
        return None
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}"
    exact: set[int] = set()
    same_inode: set[int] = set()
    for line in lines:
        # "1: FLOCK  ADVISORY  WRITE 4242 fe:00:1474578 0 EOF" (a waiter's line has "->" second)
        fields = line.split()
        if len(fields) < 6 or fields[1:4] != ["FLOCK", "ADVISORY", "WRITE"]:
            continue
        if not fields[4].isdigit() or int(fields[4]) <= 0:  # 0: a pid this process cannot see
            continue
        dev, _, ino = fields[5].rpartition(":")
        if ino == str(st.st_ino):
            same_inode.add(int(fields[4]))
            if dev == device:
                exact.add(int(fields[4]))
    # Btrfs gives stat() a device of its own per subvolume, not the one /proc/locks shows: there,
    # the inode alone, when it names one holder.
    for pids in (exact, same_inode):
        if len(pids) == 1:
            return pids.pop()
    return None


def _in_use(path: str, pid: int | None) -> ConfigError:
    who = f" (pid {pid})" if pid is not None else ""
    return ConfigError(
        f"database {path} is in use by another webhook-kit process{who}; one process at a "
        "time may use an SQLite file (use PostgreSQL, --db postgresql://..., for several)"
    )


def check_file(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"cannot open database {path}: not a regular file")
