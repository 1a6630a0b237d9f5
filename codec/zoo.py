"""Shipped weights: export a trained network to safetensors and load it back without pickle.

A weights file holds the float parameters, the integer frequency tables the
coder uses (see :mod:`codec.entropy_models`) and, in its metadata, the
architecture (``config``) and a ``model_id``.  Files identify their model by
``model_id`` plus the first bytes of the SHA-256 of the weights file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import entropy_models as em
from .model import ImportanceCodec, ModelConfig

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "lcodec-im-v1.safetensors"
TABLE_KEYS = ("tables.y", "tables.z", "tables.map")


class WeightsError(Exception):
    """Weights file missing, unreadable or not one of ours."""


@dataclass
class LoadedWeights:
    network: ImportanceCodec
    tables: dict[str, np.ndarray]
    model_id: str
    digest: bytes  # first 8 bytes of the file's SHA-256


def export_weights(model: ImportanceCodec, path: Path, model_id: str | None = None) -> None:
    """Write ``model`` and its coding tables to ``path`` (safetensors)."""
    model = model.eval()
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items() if v.numel()}
    tensors["tables.y"] = torch.from_numpy(em.gaussian_tables()).int()
    tensors["tables.z"] = torch.from_numpy(em.factorized_tables(model.z_density)).int()
    tensors["tables.map"] = torch.from_numpy(em.categorical_tables(model.map_logits)).int()
    c = model.config
    model_id = model_id or f"im-n{c.n}-m{c.m}-l{c.levels if c.importance else 0}"
    meta = {"config": json.dumps(c.to_dict()), "model_id": model_id, "format": "lcodec-weights-1"}
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_weights(path: Path | str | None = None) -> LoadedWeights:
    """Load a weights file (default: the shipped model)."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise WeightsError(f"model weights not found: {path}")
    try:
        raw = path.read_bytes()
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
        config = ModelConfig.from_dict(json.loads(meta["config"]))
    except (SafetensorError, KeyError, ValueError, TypeError, OSError) as e:
        raise WeightsError(f"cannot read model weights {path}: {e}") from None
    network = ImportanceCodec(config)
    state = {k: v for k, v in tensors.items() if k not in TABLE_KEYS}
    missing, unexpected = network.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("z_density._")]  # CompressAI caches
    if missing or unexpected:
        raise WeightsError(f"weights {path} do not match the architecture: {missing or unexpected}")
    network.eval()
    tables = {k.split(".")[1]: tensors[k].numpy().astype(np.int64) for k in TABLE_KEYS}
    return LoadedWeights(network, tables, meta["model_id"], hashlib.sha256(raw).digest()[:8])


def load_model(path: Path | str | None = None, trainable: bool = False) -> ImportanceCodec:
    """The network of a weights file, e.g. to fine-tune it."""
    network = load_weights(path).network
    return network.train(trainable)
