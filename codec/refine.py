"""Encoder-side latent refinement (Campos et al. 2019; Yang et al. 2020).

The analysis transform is *amortised*: one network guesses, for any picture, the latent
that minimises ``bpp + lambda * 255^2 * MSE``.  At encode time the guess can be improved
by gradient descent on the analysis output itself, with every network frozen.  The file
stays an ordinary lcodec file, decoded by the same model in the same time; only encoding
is slower.  The gap it closes is large for a model trained as briefly as ours: 50 steps
make the Kodak files of each quality 26-54% smaller (``ours-refine`` in
``results/kodak/rd.csv``).

The cost optimised is the training loss.  Its gradient is taken with the soft-to-hard
quantizer of training (:func:`codec.quantization.soft_round`), the temperature annealed
over the steps, which finds cheaper latents than rounding with a straight-through
gradient (on held-out photos, 30 steps cut the cost of the real file by 23% instead of
15%).  The cost that decides is the hard one, of the file that would be written (up to
the integer tables): the start and every step of the second half are scored, and the
cheapest is kept, so refining never makes that cost worse.  Large pictures are refined
tile by tile, with overlapping margins, so memory stays bounded.
"""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm import tqdm

from .model import ImportanceCodec
from .tiling import bands

#: Latent positions (16 pixels each) per side of a refinement tile (with
#: :data:`codec.tiling.MARGIN` of context around it); a multiple of 4 so that tiles keep
#: the hyper-latent grid.
TILE = 48
#: First Adam step on the analysis output (then cosine decay) and the soft quantizer's
#: temperatures (geometric from the first to the last step); chosen on held-out training
#: photos.
LEARNING_RATE = 0.05
TEMPERATURES = (0.5, 0.02)


def rd_cost(
    net: ImportanceCodec,
    features: Tensor,
    x: Tensor,
    weight: Tensor,
    quality: int,
    temperature: float | None = None,
) -> Tensor:
    """``bits / pixels + lambda * 255^2 * MSE`` of coding ``features`` at ``quality``
    (1-based) against the picture ``x``; ``weight`` (1,1,H,W) marks the pixels that count
    (the picture, not its padding).  Hard values (straight-through gradient), or the soft
    quantizer at ``temperature``."""
    q = torch.tensor([quality - 1])
    mode = "ste" if temperature is None else "soft"
    out = net.code_features(features, q, mode, temperature or 0.0)
    pixels = weight.sum()
    bits = out["y_bits"].sum() + out["z_bits"].sum() + out["map_bits"].sum()
    mse = (weight * (out["x_hat"].clamp(0, 1) - x) ** 2).sum() / (3 * pixels)
    return bits / pixels + net.config.lambdas[quality - 1] * 255**2 * mse


def refine(
    net: ImportanceCodec,
    features: Tensor,
    x: Tensor,
    size: tuple[int, int],
    quality: int,
    steps: int,
    lr: float = LEARNING_RATE,
    progress: bool = False,
) -> Tensor:
    """Analysis output ``features`` (1, m+1, H/16, W/16) of the padded picture ``x``
    (1, 3, H, W, values in 0..1, of which the top-left ``size`` = (height, width) is the
    picture) improved by ``steps`` Adam steps on :func:`rd_cost` at ``quality``;
    ``progress`` shows a bar."""
    features = features.detach().clone()
    h, w = size
    weight = torch.zeros((1, 1, *x.shape[2:]))
    weight[:, :, :h, :w] = 1
    s = x.shape[2] // features.shape[2]
    tiles = [(r, c) for r in bands(features.shape[2], TILE) for c in bands(features.shape[3], TILE)]
    bar = tqdm(total=len(tiles) * steps, desc="refine", disable=not progress)
    for (r0, r1, a0, a1), (c0, c1, b0, b1) in tiles:
        pix = (slice(None), slice(None), slice(a0 * s, a1 * s), slice(b0 * s, b1 * s))
        if weight[pix].any():  # else padding only: nothing to gain
            tile = features[:, :, a0:a1, b0:b1]
            best = _descend(net, tile, x[pix], weight[pix], quality, steps, lr, bar)
            features[:, :, r0:r1, c0:c1] = best[:, :, r0 - a0 : r1 - a0, c0 - b0 : c1 - b0]
    bar.close()
    return features


def _descend(
    net: ImportanceCodec,
    start: Tensor,
    x: Tensor,
    weight: Tensor,
    quality: int,
    steps: int,
    lr: float,
    bar: tqdm,
) -> Tensor:
    """The lowest hard-cost point among ``start`` and the second half of ``steps`` Adam
    steps from it on the soft cost, the step size decaying from ``lr`` to 0 (cosine) and
    the temperature geometrically through :data:`TEMPERATURES`."""
    f = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([f], lr=lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    (t_first, t_last), best, best_cost = TEMPERATURES, start, float("inf")
    for step in range(steps + 1):
        if step == 0 or 2 * step >= steps:
            cost = rd_cost(net, f.detach(), x, weight, quality).item()
            if cost < best_cost:
                best, best_cost = f.detach().clone(), cost
        if step == steps:
            break
        temperature = t_first * (t_last / t_first) ** (step / max(steps - 1, 1))
        with torch.enable_grad():
            soft = rd_cost(net, f, x, weight, quality, temperature)
            (f.grad,) = torch.autograd.grad(soft, f)
        opt.step()
        decay.step()
        bar.update()
    return best
