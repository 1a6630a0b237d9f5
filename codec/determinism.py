"""Thread-count-independent convolutions for everything that produces decoded pixels.

A convolution on several threads can sum in an order that depends on the thread count
(oneDNN's did: decoded pixels differed between 1 and 2 threads), and PyTorch's native
convolutions, which did not, are about three times slower.  So decoders run their networks
on oneDNN's convolutions on *one* thread each (:func:`one_thread`): the fastest kernels,
summing in one fixed order.  Pictures coded in tiles use every core by running the tiles
side by side, one thread each (:func:`map_one_thread`); each tile's pixels are then those of
the same single-threaded computation, whatever the thread count.  The tile layout must
depend on the picture alone: a convolution's summation order can depend on its input's size.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")
_lock = threading.Lock()
_active = 0  # one_thread blocks running, in any thread
_mkldnn = True  # oneDNN's switch as the first of them found it


@contextmanager
def one_thread() -> Iterator[None]:
    """oneDNN convolutions on one thread for the enclosed block.  Torch's thread count is
    set for the calling thread (OpenMP keeps one per thread; threads started inside the
    block inherit it) and restored after; oneDNN's switch is process-wide, so it stays on
    while a block runs in any thread, and the last block to end restores it."""
    global _active, _mkldnn
    threads = torch.get_num_threads()
    with _lock:
        if not _active:
            _mkldnn = torch.backends.mkldnn.enabled
            torch.backends.mkldnn.enabled = True
        _active += 1
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        with _lock:
            _active -= 1
            if not _active:
                torch.backends.mkldnn.enabled = _mkldnn


def decoding() -> bool:
    """Whether a :func:`one_thread` block is running: networks that would otherwise pick
    a faster, machine-dependent precision (bfloat16) stay in float32."""
    return _active > 0


def map_one_thread(fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
    """``fn(item)`` for each of ``items``, in order, without gradients, each call on one
    thread (:func:`one_thread`) and as many calls at once as torch had threads."""
    workers = min(torch.get_num_threads(), len(items))

    def call(item: T) -> R:
        torch.set_num_threads(1)  # per thread, as grad mode: set in the worker itself
        with torch.no_grad():
            return fn(item)

    with one_thread():
        if workers <= 1:
            yield from map(call, items)
            return
        with ThreadPoolExecutor(workers) as pool:
            yield from pool.map(call, items)
