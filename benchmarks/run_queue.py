"""Who trains which run of the growth map, when several workers share one queue (``horizon.py``).

Each run has a lock file beside its result, ``<run>.lock``, and a worker trains the run only while it holds an exclusive
``flock`` on that file. The kernel drops the lock when its process ends, however it ends, so a run whose worker died is
free again without anyone having to decide that the worker is dead (deciding it from a pid in the file let two workers
that found the same dead pid both take the run over). The file holds the holder's pid for people looking at the queue;
no worker reads it. POSIX only, like the rest of the map's tooling.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

# Lock file -> the open descriptor whose flock this process holds on it.
_held: dict[Path, int] = {}


def lock_path(result: Path) -> Path:
    return result.with_suffix(".lock")


def claim(result: Path) -> bool:
    """Take the run whose result goes to ``result``; False when another worker (or this process) holds it."""
    lock = lock_path(result)
    while True:
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        # The holder may have released and unlinked the file between our open and our flock: we would then hold a
        # lock on a file nobody else opens any more, beside whoever locked the new file at the path. Start again.
        if _same_file(lock, descriptor):
            break
        os.close(descriptor)
    os.ftruncate(descriptor, 0)
    os.write(descriptor, str(os.getpid()).encode())
    _held[lock] = descriptor
    return True


def release(result: Path) -> None:
    """Give the run back (its result written, or its training failed); nothing happens for a run we do not hold."""
    lock = lock_path(result)
    descriptor = _held.pop(lock, None)
    if descriptor is None:
        return
    # Unlinked while still locked, so that a worker which opened this file meanwhile finds it gone and starts again.
    lock.unlink(missing_ok=True)
    os.close(descriptor)


def _same_file(path: Path, descriptor: int) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)
