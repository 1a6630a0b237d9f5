"""Enhancement-network weights: export to safetensors and load back without pickle.

Post-filter files hold the architecture (``config``, with the condition kind: HEVC QP or
our codec's quality level, and the size of the blind strength estimator, whose weights are
the ``estimator.*`` tensors), a ``model_id``, ``residual_scale``: a JSON list of
``[value, scale]`` points, the factor applied to the predicted correction at each told QP
or quality (interpolated between points, constant beyond them), and ``blind_scale``, the
factor in blind mode: one number, or such a list keyed by the value the strength estimator
reads (:func:`postfilter.calibrate.blind_scales`).
Restoration files (:mod:`postfilter.restore`) hold ``config`` (with the task) and
``model_id``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .model import ArtifactNet, FilterConfig
from .restore import RestoreConfig, Restorer

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "hevc-artifacts-v6.safetensors"
#: The shipped filter of HEVC video decodes (4:2:0 P/B frames, trained for Y-PSNR).
VIDEO_WEIGHTS = WEIGHTS_DIR / "hevc-video-v1.safetensors"
#: The shipped filter of our own codec's decodes (``lcodec decode --enhance artifacts``).
LCODEC_WEIGHTS = WEIGHTS_DIR / "lcodec-artifacts-v2.safetensors"
FORMAT = "lcodec-postfilter-2"
RESTORE_FORMAT = "lcodec-restore-1"
#: The shipped restoration networks, by task.
RESTORE_WEIGHTS = {
    task: WEIGHTS_DIR / f"{task}-v1.safetensors" for task in ("denoise", "sr2", "sr4", "deblur")
}


class PostFilterError(Exception):
    """Weights missing or unreadable, or an image the filter cannot process."""


def export_weights(
    net: ArtifactNet,
    path: Path,
    model_id: str,
    residual_scale: Sequence[tuple[float, float]] = ((34.5, 1.0),),
    blind_scale: float | Sequence[tuple[float, float]] = 1.0,
) -> None:
    """Write ``net`` to ``path`` (safetensors, float32), atomically."""
    meta = {
        "format": FORMAT,
        "model_id": model_id,
        "residual_scale": _points_json(residual_scale),
        "blind_scale": _points_json(blind_scale),
    }
    _save(net, path, meta)


def _points_json(points: float | Sequence[tuple[float, float]]) -> str:
    """``[[value, scale], ...]`` as JSON; one number as itself."""
    if isinstance(points, int | float):
        return str(float(points))
    return json.dumps([[float(q), float(v)] for q, v in points])


def _points(text: str) -> tuple[list[float], list[float]]:
    """(values, scales), sorted, of :func:`_points_json` text; one number holds everywhere."""
    points = json.loads(text)
    if isinstance(points, int | float):
        points = [[0.0, points]]
    points = sorted(points)
    return [float(q) for q, _ in points], [float(v) for _, v in points]


def export_restorer(net: Restorer, path: Path, model_id: str) -> None:
    """Write a restoration network to ``path`` (safetensors, float32), atomically."""
    _save(net, path, {"format": RESTORE_FORMAT, "model_id": model_id})


def _save(net: ArtifactNet | Restorer, path: Path, meta: dict[str, str]) -> None:
    tensors = {k: v.detach().float().contiguous() for k, v in net.state_dict().items()}
    meta = {**meta, "config": json.dumps(net.config.to_dict())}
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_weights(path: Path | str | None = None) -> tuple[ArtifactNet, dict]:
    """The network in eval mode and the file's metadata (default: the shipped weights);
    ``residual_scale`` and ``blind_scale`` are parsed into (values, scales) lists (one
    blind number is one point)."""

    def build(meta: dict) -> ArtifactNet:
        meta["residual_scale"] = _points(meta["residual_scale"])
        meta["blind_scale"] = _points(meta["blind_scale"])
        return ArtifactNet(FilterConfig.from_dict(json.loads(meta["config"])))

    return _load(Path(path) if path is not None else DEFAULT_WEIGHTS, FORMAT, "post-filter", build)


def load_restorer(path: Path | str) -> tuple[Restorer, dict]:
    """A restoration network in eval mode and its file's metadata."""

    def build(meta: dict) -> Restorer:
        return Restorer(RestoreConfig.from_dict(json.loads(meta["config"])))

    return _load(Path(path), RESTORE_FORMAT, "restoration", build)


def _load(path: Path, fmt: str, what: str, build: Callable[[dict], nn.Module]):
    """The network ``build`` makes from the metadata of the ``fmt`` file ``path``, its
    tensors loaded, in eval mode, and the metadata; any problem as :class:`PostFilterError`
    naming ``what`` weights."""
    if not path.is_file():
        raise PostFilterError(f"{what} weights not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        if meta.get("format") != fmt:
            raise ValueError(f"not a {what} weights file")
        net = build(meta)
        net.load_state_dict(load_file(str(path)))
    except (SafetensorError, KeyError, ValueError, TypeError, RuntimeError, OSError) as e:
        raise PostFilterError(f"cannot read {what} weights {path}: {e}") from None
    return net.eval(), meta
