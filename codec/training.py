"""What the image and P-frame trainers share: their schedule, optimizers, checkpoint and logs.

Both train a model whose entropy bottlenecks fit their quantiles on an auxiliary loss
(``model.aux_loss()``), anneal the quantizer and the learning rate with :func:`schedule`,
checkpoint to ``RUN/checkpoint.pt`` and log to CSV files in the run folder.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from pathlib import Path
from typing import Any, TextIO

import torch
from torch import Tensor, nn


def add_schedule_arguments(
    ap: argparse.ArgumentParser, lr: float, lr_min: float, soft_until: float | None
) -> None:
    """Options of :func:`schedule`, with the trainer's defaults (no ``--soft-until`` when
    ``soft_until`` is None: a trainer that times its soft phase otherwise)."""
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--lr-min", type=float, default=lr_min)
    ap.add_argument("--quant", choices=("soft", "noise"), default="soft")
    if soft_until is not None:
        ap.add_argument("--soft-until", type=float, default=soft_until)
    ap.add_argument("--t-start", type=float, default=1.0)
    ap.add_argument("--t-end", type=float, default=0.02)


def add_run_arguments(ap: argparse.ArgumentParser) -> None:
    """Options of validation, logging, checkpointing and the machine."""
    ap.add_argument("--val-every", type=int, default=1000)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)


def learning_rate(step: int, args: argparse.Namespace) -> float:
    """The cosine learning rate at ``step``, from ``--lr`` to ``--lr-min`` over ``--steps``."""
    frac = step / args.steps
    return args.lr_min + 0.5 * (args.lr - args.lr_min) * (1 + math.cos(math.pi * frac))


def schedule(step: int, args: argparse.Namespace) -> tuple[str, float, float]:
    """(quantization mode, temperature, learning rate) at ``step``."""
    frac = step / args.steps
    lr = learning_rate(step, args)
    if args.quant == "noise":
        return "noise", 0.0, lr
    if frac < args.soft_until:
        return "soft", annealed_temperature(frac / args.soft_until, args), lr
    return "ste", 0.0, lr


def annealed_temperature(frac: float, args: argparse.Namespace) -> float:
    """The soft quantizer's temperature ``frac`` (0..1) of the way through its soft phase:
    geometric from ``--t-start`` to ``--t-end``."""
    return args.t_start * (args.t_end / args.t_start) ** frac


def read_checkpoint(path: Path) -> dict | None:
    """The checkpoint at ``path``, or None when there is none yet."""
    return torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None


class TrainState:
    """The optimization state of a run: Adam on the trainable main parameters (scheduled
    rate) and on the trainable density quantiles (1e-3), the step and the random states;
    checkpointed to ``path`` with the model and its config.

    Resumes from ``ckpt`` when given, so make it once the model is built and on its device.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float,
        rng: random.Random,
        path: Path,
        ckpt: dict | None,
    ) -> None:
        self.model, self.rng, self.path = model, rng, path
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        aux_params = [p for n, p in named if n.endswith("quantiles")]
        self.main_params = [p for n, p in named if not n.endswith("quantiles")]
        self.opt = torch.optim.Adam(self.main_params, lr=lr)
        # None when the densities are frozen (torch refuses an optimizer of nothing)
        self.aux_opt = torch.optim.Adam(aux_params, lr=1e-3) if aux_params else None
        self.step = 0
        if ckpt is not None:
            self.opt.load_state_dict(ckpt["opt"])
            if self.aux_opt is not None:
                self.aux_opt.load_state_dict(ckpt["aux_opt"])
            self.step = ckpt["step"]
            rng.setstate(ckpt["rng"])
            torch.set_rng_state(ckpt["torch_rng"])
            print(f"resumed {path} at step {self.step}")

    def update(self, loss: Tensor, lr: float) -> None:
        """One step: ``loss`` at rate ``lr`` (gradient norm clipped to 1), then the
        model's auxiliary loss."""
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.main_params, 1.0)
        self.opt.step()
        if self.aux_opt is not None:
            aux = self.model.aux_loss()
            self.aux_opt.zero_grad(set_to_none=True)
            aux.backward()
            self.aux_opt.step()
        self.step += 1

    def save(self) -> None:
        """Write the checkpoint (atomically: through a temporary file)."""
        state = {
            "model": self.model.state_dict(),
            "config": self.model.config.to_dict(),
            "opt": self.opt.state_dict(),
            "aux_opt": None if self.aux_opt is None else self.aux_opt.state_dict(),
            "step": self.step,
            "rng": self.rng.getstate(),
            "torch_rng": torch.get_rng_state(),
        }
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.path)


def csv_log(path: Path, columns: list[str]) -> tuple[Any, TextIO]:
    """A CSV writer appending to ``path`` (header written when new or empty, as a run
    stopped before its first row leaves it) and its file."""
    new = not path.exists() or path.stat().st_size == 0
    f = open(path, "a", newline="")
    writer = csv.writer(f)
    if new:
        writer.writerow(columns)
    return writer, f
