"""The CompressAI pieces the codec builds on, imported here once with CompressAI's
import-time warning silenced (it still uses ``torch.jit.script``).

Importing CompressAI loads all of it, point-cloud datasets and ``torch_geometric``
included: seconds.  So only the modules that build networks import this one, and
``import codec`` does not until a model is used (:mod:`codec`).
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from compressai.entropy_models import EntropyBottleneck
    from compressai.layers import GDN

__all__ = ["GDN", "EntropyBottleneck"]
