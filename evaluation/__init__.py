"""Rate-distortion evaluation: codecs compared on an image set, BD-rates, tables and plots.

``run_rd`` runs it from Python; ``lcodec rd`` (``cli/rd.py``) from the command line;
``python -m evaluation.kodak`` regenerates the committed Kodak results.

``run_rd`` is imported on first use: the runner loads SciPy (most of a second), which the
commands that only borrow a helper from this package (``encode``, ``decode``, ``enhance``)
do not need.
"""

from typing import Any

from .errors import EvaluationError

__all__ = ["EvaluationError", "run_rd"]


def __getattr__(name: str) -> Any:
    if name == "run_rd":
        from .runner import run_rd

        return run_rd
    raise AttributeError(f"module 'evaluation' has no attribute {name!r}")
