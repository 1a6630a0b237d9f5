"""Average the weights of image models fine-tuned from one start (a "model soup").

Runs that start from the same weights and differ only in their random crops stay in one
basin of the loss; the mean of their parameters is often better than each of them
(Wortsman et al. 2022), for the cost of the runs alone.  The coding tables are derived
from the averaged network when it is exported, as for any trained model::

    python -m codec.average runs/a/model.safetensors runs/b/model.safetensors -o soup.safetensors
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from .errors import WeightsError
from .model import ImportanceCodec
from .zoo import export_weights, load_model


def average_models(paths: Sequence[Path | str]) -> ImportanceCodec:
    """The network whose every float tensor is the mean of those of the models in
    ``paths``, which must share one architecture; other tensors must be equal."""
    if not paths:
        raise ValueError("no models to average")
    models = [load_model(p) for p in paths]
    first = models[0]
    if any(m.config != first.config for m in models[1:]):
        raise WeightsError("the models to average differ in architecture")
    states = [m.state_dict() for m in models]
    mean = {}
    for key, tensor in states[0].items():
        others = [s[key] for s in states[1:]]
        if tensor.is_floating_point():
            mean[key] = torch.stack([tensor, *others]).double().mean(0).to(tensor.dtype)
        elif all(torch.equal(tensor, o) for o in others):
            mean[key] = tensor
        else:
            raise WeightsError(f"the models to average differ in {key}")
    first.load_state_dict(mean)
    return first.eval()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="+", type=Path, help="weights files of one architecture")
    p.add_argument("-o", "--out", type=Path, required=True, help="averaged weights file")
    p.add_argument("--model-id", help="model id written into the file")
    args = p.parse_args(argv)
    try:
        soup = average_models(args.models)
    except WeightsError as e:
        raise SystemExit(f"error: {e}") from None
    export_weights(soup, args.out, model_id=args.model_id)


if __name__ == "__main__":
    main()
