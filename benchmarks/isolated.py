"""Run one measurement in a fresh child process, so its peak RSS is its own."""

from __future__ import annotations

import multiprocessing as mp
import resource
from collections.abc import Callable


def _child(job: Callable[..., dict], args: tuple, threads: int, queue) -> None:
    import torch

    torch.set_num_threads(threads)
    result = job(*args)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(result)


def measure(job: Callable[..., dict], args: tuple, threads: int) -> dict:
    """``job(*args)`` (a module-level function returning a dict) plus ``peak_rss_mb``."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(job, args, threads, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result
