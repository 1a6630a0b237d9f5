"""Networks the command loads, each once per run however many inputs a batch has."""

from __future__ import annotations

import functools
import sys
from pathlib import Path


@functools.cache
def picture_codec(weights: Path | None):
    """The picture codec of ``--model`` (None: the shipped one), a :class:`codec.Codec`."""
    import codec

    return codec.load_model(weights, progress=sys.stderr.isatty())


@functools.cache
def p_frame_coder(weights: Path):
    """The P-frame model in ``weights``, a :class:`codec.inter_coder.InterCoder`."""
    from codec.inter_coder import InterCoder

    return InterCoder(weights)
