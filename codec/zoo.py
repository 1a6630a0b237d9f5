"""Shipped weights: export a trained network to safetensors and load it back without pickle.

A weights file holds the float parameters, the integer frequency tables the
coder uses (see :mod:`codec.entropy_models`) and, in its metadata, the
architecture (``config``) and a ``model_id``.  Files identify their model by
``model_id`` plus the first bytes of the SHA-256 of the weights file.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from . import entropy_models as em
from .errors import WeightsError
from .model import ImportanceCodec, ModelConfig, QualityConfig

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "lcodec-im-v7.safetensors"
FORMAT = "lcodec-weights-1"  # the format the weights files of picture models declare
TABLE_KEYS = ("tables.y", "tables.z", "tables.map")


N = TypeVar("N", bound=torch.nn.Module)
L = TypeVar("L", bound="LoadedWeights")


@dataclass
class LoadedWeights(Generic[N]):
    network: N
    tables: dict[str, np.ndarray]
    model_id: str
    digest: bytes  # first 8 bytes of the file's SHA-256

    @classmethod
    def load(
        cls: type[L],
        path: Path,
        config_type: type[QualityConfig],
        network_type: Callable[[Any], N],
        table_keys: tuple[str, ...],
        kind: str = "model",
        fmt: str | None = None,
    ) -> L:
        """A ``network_type`` of the config stored in ``path``, loaded from it, and the
        tables named ``table_keys``.  ``kind`` names the model in errors; ``fmt``, when
        given, is the format the file must declare."""
        meta, tensors, digest = read_weights(path)
        if fmt is not None and meta.get("format") != fmt:
            raise WeightsError(f"{path} is not a {kind} model ({meta.get('format')})")
        try:
            config = config_type.from_dict(json.loads(meta["config"]))
        except (KeyError, ValueError, TypeError) as e:
            raise WeightsError(f"cannot read {kind} weights {path}: {e}") from None
        network = network_type(config)
        tables = load_network(network, tensors, table_keys, path)
        return cls(network, tables, meta["model_id"], digest)


def write_weights(
    model: torch.nn.Module, tables: dict[str, np.ndarray], model_id: str, fmt: str, path: Path
) -> None:
    """Write ``model``'s parameters, its integer coding ``tables`` (as ``tables.<name>``) and,
    as metadata, its config, ``model_id`` and format ``fmt`` to ``path`` (atomically)."""
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items() if v.numel()}
    tensors |= {f"tables.{k}": torch.from_numpy(t).int() for k, t in tables.items()}
    meta = {"config": json.dumps(model.config.to_dict()), "model_id": model_id, "format": fmt}
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def export_weights(
    model: ImportanceCodec,
    path: Path,
    model_id: str | None = None,
    tables: dict[str, np.ndarray] | None = None,
) -> None:
    """Write ``model`` and its coding tables to ``path`` (safetensors): ``tables`` when
    given (those of a model whose coding part ``model`` shares), else derived from it."""
    model = model.eval()
    tables = tables or {
        "y": em.gaussian_tables(),
        "z": em.factorized_tables(model.z_density),
        "map": em.categorical_tables(model.map_logits),
    }
    c = model.config
    model_id = model_id or f"im-n{c.n}-m{c.m}-l{c.levels if c.importance else 0}"
    write_weights(model, tables, model_id, FORMAT, path)


def load_weights(path: Path | str | None = None) -> LoadedWeights[ImportanceCodec]:
    """Load a weights file (default: the shipped model)."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    return LoadedWeights.load(path, ModelConfig, ImportanceCodec, TABLE_KEYS, "picture", FORMAT)


def read_weights(path: Path) -> tuple[dict[str, str], dict[str, torch.Tensor], bytes]:
    """Metadata, tensors and digest (first 8 bytes of SHA-256) of a safetensors file."""
    if not path.is_file():
        raise WeightsError(f"model weights not found: {path}")
    try:
        raw = path.read_bytes()  # read once: digest, metadata and tensors of the same bytes
        tensors = load(raw)
        (size,) = struct.unpack_from("<Q", raw)  # the JSON header, after its u64 length
        meta = json.loads(raw[8 : 8 + size]).get("__metadata__") or {}
    except (SafetensorError, OSError, ValueError, struct.error) as e:
        raise WeightsError(f"cannot read model weights {path}: {e}") from None
    if "model_id" not in meta:
        raise WeightsError(f"cannot read model weights {path}: no model id")
    return meta, tensors, hashlib.sha256(raw).digest()[:8]


def load_network(
    network: torch.nn.Module,
    tensors: dict[str, torch.Tensor],
    table_keys: tuple[str, ...],
    path: Path,
) -> dict[str, np.ndarray]:
    """Load ``tensors`` into ``network`` (put in eval mode); return the integer tables named
    ``table_keys`` (by the part after ``tables.``).  Raises WeightsError on a mismatch."""
    state = {k: v for k, v in tensors.items() if k not in table_keys}
    try:
        missing, unexpected = network.load_state_dict(state, strict=False)
    except RuntimeError as e:  # a tensor of the wrong shape
        raise WeightsError(f"weights {path} do not match the architecture: {e}") from None
    absent = [k for k in table_keys if k not in tensors]
    if missing or unexpected or absent:
        raise WeightsError(
            f"weights {path} do not match the architecture: {missing or unexpected or absent}"
        )
    network.eval()
    return {k.split(".", 1)[1]: tensors[k].numpy().astype(np.int64) for k in table_keys}


def load_model(path: Path | str | None = None, trainable: bool = False) -> ImportanceCodec:
    """The network of a weights file, e.g. to fine-tune it."""
    network = load_weights(path).network
    return network.train(trainable)
