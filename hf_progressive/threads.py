"""How many CPU threads torch should use, when nobody said.

torch starts one thread per core. When other processes share the cores (a second training run, a benchmark
worker, DDP ranks on one CPU machine) that oversubscribes them: on a 2-core machine we measured a 6-block phase 6x
slower with torch's default than with one thread, and an unrelated run 40x slower with 2 threads than with 1.
"""

from __future__ import annotations

import logging
import os

import torch

logger = logging.getLogger(__name__)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def sane_thread_count(local_processes: int = 1, cpus: int | None = None, load: float | None = None) -> int:
    """Threads per process that leave every core to one thread: the cores not busy with other work (the 1-minute
    load average), shared among this machine's ``local_processes`` ranks; at least 1.

    A core counts as busy from a load of 0.7 on: the average lags, so a job that ended a minute ago still shows
    about 0.5, while one running beside us shows 1.0."""
    cpus = usable_cpus() if cpus is None else cpus
    load = current_load() if load is None else load
    free = max(1, cpus - int(load + 0.3))
    return max(1, free // max(1, local_processes))


def current_load() -> float:
    """The 1-minute load average: how many cores other work keeps busy (0 where the OS does not say)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def configure_torch_threads(local_processes: int = 1) -> int:
    """Set torch's CPU threads to :func:`sane_thread_count` unless ``OMP_NUM_THREADS`` chooses; returns the count.

    Call it before training starts (and before torch runs any parallel work).
    """
    if os.environ.get("OMP_NUM_THREADS"):
        threads = int(os.environ["OMP_NUM_THREADS"])
        reason = "OMP_NUM_THREADS"
    else:
        load = current_load()
        threads = sane_thread_count(local_processes, load=load)
        reason = f"{usable_cpus()} CPUs, {local_processes} process(es) here, load {load:.1f}"
        reason += "; set OMP_NUM_THREADS to choose"
    torch.set_num_threads(threads)
    logger.info("torch uses %d CPU thread(s) per process (%s).", threads, reason)
    return threads
