"""P-frame weights: export an :class:`~codec.inter_model.InterCodec` to safetensors and load
it back, as :mod:`codec.zoo` does for the image model.

The file holds the float parameters, the integer frequency tables the coder uses (the
Gaussian tables ``tables.y``, shared by both latents, and the factorized tables of the
motion and residual hyper-latents) and, in its metadata, the architecture and a
``model_id``.  The flow estimator is included: encoders need it, decoders ignore it.
"""

from __future__ import annotations

from pathlib import Path

from . import entropy_models as em
from .inter_model import InterCodec, InterConfig
from .zoo import WEIGHTS_DIR, LoadedWeights, write_weights

#: The shipped P-frame model (:meth:`codec.video.VideoCodec.shipped`; ``lcodec`` video).
DEFAULT_INTER_WEIGHTS = WEIGHTS_DIR / "lcodec-inter-v6.safetensors"
FORMAT = "lcodec-inter-weights-1"
TABLE_KEYS = ("tables.y", "tables.motion_z", "tables.residual_z")


class LoadedInter(LoadedWeights[InterCodec]):
    """A loaded P-frame weights file."""


def export_inter_weights(model: InterCodec, path: Path, model_id: str | None = None) -> None:
    """Write ``model`` and its coding tables to ``path`` (safetensors)."""
    model = model.eval()
    tables = {"y": em.gaussian_tables()}
    for name in ("motion", "residual"):
        tables[f"{name}_z"] = em.factorized_tables(getattr(model, name).z_density)
    c = model.config
    coding = f"-cond{c.conditional}" if c.conditional else ""
    model_id = model_id or f"inter-m{c.mm}-r{c.m}-mc{c.mc}{coding}"
    write_weights(model, tables, model_id, FORMAT, path)


def load_inter_weights(path: Path | str) -> LoadedInter:
    """Load a P-frame weights file."""
    return LoadedInter.load(Path(path), InterConfig, InterCodec, TABLE_KEYS, "P-frame", FORMAT)


def load_inter_model(path: Path | str, trainable: bool = False) -> InterCodec:
    """The network of a P-frame weights file, e.g. to fine-tune it."""
    return load_inter_weights(path).network.train(trainable)
