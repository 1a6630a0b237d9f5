"""What the importance map does: per quality, how many channels it keeps and how much that
varies over a picture (a map that does not vary is a fixed channel count, not a map).

    python -m benchmarks.importance_map WEIGHTS --images DIR [--last N] -o results/map.json

Prints, per quality, the mean share of latent channels coded, the mean over images of the
map's spatial standard deviation (in levels) and the levels used; writes them as JSON and,
next to it, a PNG of the first image's maps at the lowest, middle and highest quality.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from codec.importance import importance_levels  # noqa: E402
from codec.model import ImportanceCodec  # noqa: E402
from codec.zoo import load_model  # noqa: E402
from evaluation.runner import find_images  # noqa: E402


@torch.no_grad()
def level_maps(net: ImportanceCodec, path: Path) -> np.ndarray:
    """The map levels the encoder codes for the photo at ``path``, ``(qualities, H, W)``
    at 1/16 resolution (the photo cropped to a multiple of the model's alignment)."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    h, w = (s - s % net.ALIGN for s in rgb.shape[:2])
    x = torch.from_numpy(rgb[:h, :w].copy()).permute(2, 0, 1)[None].float() / 255.0
    features = net.g_a(x)
    maps = []
    for q in range(net.config.qualities):
        _, p = net.apply_quality(features, torch.tensor([q]))
        maps.append(importance_levels(p, net.config.levels)[0, 0].numpy())
    return np.stack(maps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("weights", type=Path)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--last", type=int, help="only the last N images (sorted by name)")
    ap.add_argument("-o", "--output", type=Path, required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    images = find_images(args.images)[-args.last if args.last else 0 :]
    net = load_model(args.weights)
    levels = net.config.levels
    maps = [level_maps(net, p) for p in images]
    rows = []
    print(f"{'quality':>7s} {'channels coded':>15s} {'spatial std':>12s}  levels used")
    for q in range(maps[0].shape[0]):
        share = float(np.mean([m[q].mean() for m in maps]) / levels)
        std = float(np.mean([m[q].std() for m in maps]))
        used = sorted({int(v) for m in maps for v in np.unique(m[q])})
        rows.append({"quality": q + 1, "channels_coded": share, "spatial_std": std, "used": used})
        print(f"{q + 1:7d} {share:15.1%} {std:12.2f}  {used}")
    report = {"weights": str(args.weights), "images": [p.name for p in images], "map": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=1))
    figure = args.output.with_suffix(".png")
    _plot(images[0], maps[0], levels, figure)
    print(f"wrote {args.output} and {figure}")


def _plot(path: Path, maps: np.ndarray, levels: int, out: Path) -> None:
    shown = sorted({0, maps.shape[0] // 2, maps.shape[0] - 1})
    fig, axes = plt.subplots(1, len(shown) + 1, figsize=(4 * (len(shown) + 1), 3.2))
    axes[0].imshow(Image.open(path).convert("RGB"))
    axes[0].set_title(path.name)
    for ax, q in zip(axes[1:], shown, strict=True):
        im = ax.imshow(maps[q], vmin=0, vmax=levels, cmap="viridis")
        ax.set_title(f"quality {q + 1}: map level")
    for ax in axes:
        ax.axis("off")
    fig.colorbar(im, ax=axes[1:].tolist(), shrink=0.8)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)


if __name__ == "__main__":
    main()
