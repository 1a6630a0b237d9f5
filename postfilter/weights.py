"""Enhancement-network weights: export to safetensors and load back without pickle.

Post-filter files hold the architecture (``config``), a ``model_id`` and
``residual_scale``: a JSON list of ``[qp, scale]`` points, the factor applied to the
predicted correction at each QP (interpolated between points, constant beyond them).
Restoration files (:mod:`postfilter.restore`) hold ``config`` (with the task) and
``model_id``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .model import FilterConfig, PostFilterNet
from .restore import RestoreConfig, Restorer

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "hevc-artifacts-v1.safetensors"
FORMAT = "lcodec-postfilter-1"
RESTORE_FORMAT = "lcodec-restore-1"
#: The shipped restoration networks, by task.
RESTORE_WEIGHTS = {
    task: WEIGHTS_DIR / f"{task}-v1.safetensors" for task in ("denoise", "sr2", "sr4", "deblur")
}


class PostFilterError(Exception):
    """Weights missing or unreadable, or an image the filter cannot process."""


def export_weights(
    net: PostFilterNet,
    path: Path,
    model_id: str,
    residual_scale: Sequence[tuple[float, float]] = ((34.5, 1.0),),
) -> None:
    """Write ``net`` to ``path`` (safetensors, float32), atomically."""
    scale = json.dumps([[float(q), float(v)] for q, v in residual_scale])
    _save(net, path, {"format": FORMAT, "model_id": model_id, "residual_scale": scale})


def export_restorer(net: Restorer, path: Path, model_id: str) -> None:
    """Write a restoration network to ``path`` (safetensors, float32), atomically."""
    _save(net, path, {"format": RESTORE_FORMAT, "model_id": model_id})


def _save(net: PostFilterNet | Restorer, path: Path, meta: dict[str, str]) -> None:
    tensors = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    meta = {**meta, "config": json.dumps(net.config.to_dict())}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_weights(path: Path | str | None = None) -> tuple[PostFilterNet, dict]:
    """The network in eval mode and the file's metadata (default: the shipped weights)."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise PostFilterError(f"post-filter weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError("not a post-filter weights file")
        net = PostFilterNet(FilterConfig.from_dict(json.loads(meta["config"])))
        net.load_state_dict(load_file(str(path)))
        points = sorted(json.loads(meta["residual_scale"]))
        meta["residual_scale"] = ([float(q) for q, _ in points], [float(v) for _, v in points])
    except (SafetensorError, KeyError, ValueError, TypeError, RuntimeError, OSError) as e:
        raise PostFilterError(f"cannot read post-filter weights {path}: {e}") from None
    return net.eval(), meta


def load_restorer(path: Path | str) -> tuple[Restorer, dict]:
    """A restoration network in eval mode and its file's metadata."""
    path = Path(path)
    if not path.is_file():
        raise PostFilterError(f"restoration weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != RESTORE_FORMAT:
            raise ValueError("not a restoration weights file")
        net = Restorer(RestoreConfig.from_dict(json.loads(meta["config"])))
        net.load_state_dict(load_file(str(path)))
    except (SafetensorError, KeyError, ValueError, TypeError, RuntimeError, OSError) as e:
        raise PostFilterError(f"cannot read restoration weights {path}: {e}") from None
    return net.eval(), meta
