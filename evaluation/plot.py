"""RD plots: PSNR and MS-SSIM (dB) against bpp, this run solid, published curves dashed;
and the bits of each frame of a coded video."""

from __future__ import annotations

from pathlib import Path

from .curves import PLOTTED_REFERENCES, Curve
from .files import write_atomic

X_MAX = 2.5  # bpp; the range learned-codec papers plot on Kodak


def plot_rd(curves: dict[str, Curve], reference: dict[str, Curve], png: Path, title: str) -> None:
    """Write ``png`` and an SVG beside it: our curve on top, anchors, published references."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # renders with Agg; no pyplot, no global state

    run_max = max((max(c.bpp) for c in curves.values() if c.bpp), default=X_MAX)
    x_max = min(X_MAX, run_max * 1.05)
    published = [reference[n] for n in PLOTTED_REFERENCES if n in reference]
    names = list(dict.fromkeys([*curves, *(c.name for c in published)]))
    palette = colormaps["tab20"]
    colors = {n: palette(i % 20) for i, n in enumerate(names)}  # a codec's curves share one
    fig = Figure(figsize=(13, 5.2))
    axes = fig.subplots(1, 2)
    panels = (("psnr", "PSNR", "PSNR RGB (dB)"), ("ms_ssim_db", "MS-SSIM", "MS-SSIM RGB (dB)"))
    for ax, (metric, heading, label) in zip(axes, panels, strict=True):
        shown: list[float] = []
        for curve in published:
            style = {"ls": "--", "lw": 1.0, "color": colors[curve.name]}
            shown += _draw(ax, curve, metric, x_max, f"{curve.name} (published)", style)
        for name, curve in curves.items():
            ours = name.startswith("ours")
            style = {"ls": "-", "lw": 2.4 if ours else 1.4, "color": colors[name]}
            style["zorder"] = 3 if ours else 2
            shown += _draw(ax, curve, metric, x_max, name, {**style, "marker": "o", "ms": 3})
        ax.set_xlim(0, x_max)
        if shown:
            ax.set_ylim(min(shown) - 0.5, max(shown) + 0.5)
        ax.set_xlabel("bits per pixel")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{title}: {heading}")
    axes[0].legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    for path, fmt in ((png, "png"), (png.with_suffix(".svg"), "svg")):
        write_atomic(path, lambda tmp, fmt=fmt: fig.savefig(tmp, format=fmt, dpi=130))


def _draw(ax, curve: Curve, metric: str, x_max: float, label: str, style: dict) -> list[float]:
    """Draw a curve's points up to ``x_max`` (and one beyond, so the line reaches the edge);
    return the y values inside the range."""
    ys = curve.psnr if metric == "psnr" else curve.ms_ssim_db
    pts = [(x, y) for x, y in zip(curve.bpp, ys, strict=True) if y is not None]
    inside = [i for i, (x, _) in enumerate(pts) if x <= x_max]
    if not inside:
        return []
    ax.plot(*zip(*pts[: inside[-1] + 2], strict=True), label=label, **style)
    return [pts[i][1] for i in inside]


#: Bar colours of the frame types in :func:`frame_bits_figure`.
FRAME_COLORS = {"I": "tab:red", "P": "tab:blue"}


def frame_bits_figure(frames: list[dict], title: str):
    """A matplotlib ``Figure``: the kilobits of each frame (dicts with ``index``, ``type`` and
    ``bits``, as ``lcodec info --json`` lists them), coloured by frame type."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(6.0, min(16.0, 0.12 * len(frames) + 3)), 3.6))
    ax = fig.subplots()
    for kind, color in FRAME_COLORS.items():
        mine = [f for f in frames if f["type"] == kind]
        if mine:
            bars = ([f["index"] for f in mine], [f["bits"] / 1000 for f in mine])
            ax.bar(*bars, width=0.8, color=color, label=f"{kind}-frames ({len(mine)})")
    ax.set_xlabel("frame")
    ax.set_ylabel("kbit")
    ax.set_xlim(-1, len(frames))
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title)
    fig.tight_layout()
    return fig
