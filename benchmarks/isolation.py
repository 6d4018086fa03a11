"""Each benchmark step in a process of its own, so the peak memory it reports is its own.

A child starts with its parent's peak as its own (Linux carries ru_maxrss over fork and exec), so a
benchmark's main process must stay small: it generates its data through `isolated` too.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
from concurrent.futures import ProcessPoolExecutor


def peak_mib() -> float:
    """This process's peak resident memory."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def isolated(fn, *args):
    """`fn(*args)` in a fresh (spawned) process; its result."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()
