"""Thread-count-independent convolutions for everything that produces decoded pixels.

oneDNN's convolutions sum in an order that can depend on the thread count, so decoded
pixels differed between 1 and 2 threads.  PyTorch's native convolutions gave identical
pixels for 1 and 2 threads on every picture we tried (tests/test_shipped_model.py), so
decoders run their networks inside :func:`native_convolutions`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def native_convolutions() -> Iterator[None]:
    """Disable oneDNN (mkldnn) for the enclosed block, restoring the setting after."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before
