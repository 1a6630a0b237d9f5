"""Rate-distortion evaluation: codecs compared on an image set, BD-rates, tables and plots.

``run_rd`` runs it from Python; ``lcodec rd`` (``cli/rd.py``) from the command line;
``python -m evaluation.kodak`` regenerates the committed Kodak results.
"""

from .errors import EvaluationError
from .runner import run_rd

__all__ = ["EvaluationError", "run_rd"]
