"""Enhance decoded pictures with the post-filter, told the QP or blind, in overlapping tiles.

:func:`enhance` restores HEVC/HEIC decodes.  :func:`decode_enhanced` decodes an ``.lcf`` file
with our codec and restores it with the filter of our codec's decodes, told the file's
quality level (:func:`lcodec_enhancer`, which ``lcodec decode --enhance artifacts`` runs).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from codec.determinism import decoding, one_thread
from codec.image import pixels, to_pil
from evaluation.metrics import rgb_array

from .model import CONDITIONS, qp_conditions
from .weights import (
    DEFAULT_WEIGHTS,
    LCODEC_WEIGHTS,
    VIDEO_WEIGHTS,
    PostFilterError,
    load_weights,
)

if TYPE_CHECKING:
    from bitstream import Header
    from codec import Codec

#: Tile side.  Each tile computes the network's context (70 pixels) around it again, yet on
#: a quiet host 512- and 1024-pixel tiles filter a Kodak picture in the same time (2.1 s,
#: AVX2, 5 runs alternated), and 512 keeps the peak memory of large pictures lower.
DEFAULT_TILE = 512
BAR_TILES = 8  # pictures of fewer tiles are done too soon for a progress bar
#: Self-ensemble by default: the mean correction of the picture and its left-right flip
#: (hevc-artifacts-v4 on the held-out photos at QP 37: +0.04 dB and a better worst case, for
#: twice the work; all four flips add +0.007 dB more for twice that again).
DEFAULT_ENSEMBLE = 2
ENSEMBLES = (1, 2, 4)
#: The shipped filter of each condition kind.
FILTER_WEIGHTS = {"qp": DEFAULT_WEIGHTS, "quality": LCODEC_WEIGHTS}


def rgb_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> (1,3,H,W) float in [0, 1]."""
    return torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1)[None]


def rgb_uint8(x: torch.Tensor) -> np.ndarray:
    """(1,3,H,W) float -> HxWx3 uint8, clipped and rounded."""
    return (x[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` (...,H,W) padded at the bottom and right, replicating edges, to multiples."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple), mode="replicate")


def tiles_progress(windows: Iterator, progress: bool) -> Iterable:
    """``windows`` (of :func:`tile_windows`) with a progress bar where ``progress`` is set,
    there are at least :data:`BAR_TILES` of them and stderr is a terminal."""
    windows = list(windows)
    show = progress and len(windows) >= BAR_TILES
    return tqdm(windows, unit="tile", leave=False, disable=None if show else True)


def tile_windows(
    h: int, w: int, tile: int, context: int, scale: int = 1
) -> Iterator[tuple[tuple[slice, slice], tuple[slice, slice], tuple[slice, slice]]]:
    """Tiles of side ``tile`` covering an HxW input, in raster order.  Per tile: the input
    window (rows, columns) holding the tile and ``context`` pixels around it, where the tile
    lies in that window's output, and where it lies in the whole output (output pixels are
    ``scale`` times the input's).  With ``context`` at least the network's receptive
    radius, tiled output equals untiled output."""
    k = scale
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            ya, xa = max(0, y0 - context), max(0, x0 - context)
            window = (slice(ya, min(h, y1 + context)), slice(xa, min(w, x1 + context)))
            inner = (slice((y0 - ya) * k, (y1 - ya) * k), slice((x0 - xa) * k, (x1 - xa) * k))
            yield window, inner, (slice(y0 * k, y1 * k), slice(x0 * k, x1 * k))


def flip(x: torch.Tensor, k: int) -> torch.Tensor:
    """``x`` flipped left-right where bit 0 of ``k`` is set and upside down where bit 1 is
    (each flip is its own inverse)."""
    dims = [d for d, bit in ((-1, 1), (-2, 2)) if k & bit]
    return x.flip(dims) if dims else x


def filter_dtype() -> torch.dtype:
    """bfloat16 where oneDNN runs it (AMX or AVX512: about 5x faster than float32 on the
    development machine, and the precision the filters were trained in); float32 elsewhere,
    and while decoding (:func:`codec.determinism.decoding`: one thread, float32)."""
    fast = torch.backends.mkldnn.enabled and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.bfloat16 if fast and not decoding() else torch.float32


def fast_precision() -> contextlib.AbstractContextManager:
    """Autocast to :func:`filter_dtype` (a no-op where that is float32)."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=filter_dtype() == torch.bfloat16)


class PostFilter:
    """A loaded post-filter: ``pf(rgb, qp)`` restores an HxWx3 uint8 array; ``condition``
    says what ``qp`` is (:data:`postfilter.model.CONDITIONS`)."""

    def __init__(self, weights: Path | str | None = None) -> None:
        net, meta = load_weights(weights)
        self.net = net.to(memory_format=torch.channels_last)
        self.model_id: str = meta["model_id"]
        self.condition: str = self.net.config.condition
        self._scale_qp, self._scale = meta["residual_scale"]
        self._blind_qp, self._blind_scale = meta["blind_scale"]

    def residual_scale(self, qp: float | None, estimate: float | None = None) -> float:
        """The safety factor on the predicted correction at ``qp``, or in blind mode when
        ``qp`` is None, at the value the strength estimator read (from the weights file)."""
        if qp is None:
            return float(np.interp(estimate or 0.0, self._blind_qp, self._blind_scale))
        return float(np.interp(qp, self._scale_qp, self._scale))

    @property
    def context(self) -> int:
        """Overlap (pixels) that makes tiled output equal to untiled output."""
        return self.net.context

    @torch.no_grad()
    def estimate(self, rgb: np.ndarray) -> float | None:
        """The QP (or quality level) blind mode reads off ``rgb`` (HxWx3 uint8), or None
        for a filter without a strength estimator."""
        x = pad_to(rgb_tensor(rgb_array(rgb)), 2)
        with fast_precision():
            return self._estimated(self.net.blind_conditions(x))

    def __call__(
        self,
        rgb: np.ndarray,
        qp: float | None = None,
        tile: int = DEFAULT_TILE,
        ensemble: int = DEFAULT_ENSEMBLE,
        progress: bool = False,
    ) -> np.ndarray:
        """Restored copy of ``rgb`` (HxWx3 uint8), the filter told ``qp`` (the HEVC QP, or
        the quality level for a filter of our codec's decodes; clamped to the trained range),
        or blind when ``qp`` is None; the correction is the mean over ``ensemble`` flips of
        the picture (1, 2 or 4).  ``progress``: a bar over the tiles of a large picture."""
        return self.restore(rgb, qp, tile, ensemble, progress)[0]

    @torch.no_grad()
    def restore(
        self,
        rgb: np.ndarray,
        qp: float | None = None,
        tile: int = DEFAULT_TILE,
        ensemble: int = DEFAULT_ENSEMBLE,
        progress: bool = False,
    ) -> tuple[np.ndarray, float | None]:
        """What :meth:`__call__` returns, and the value the filter was told: ``qp`` clamped,
        blind mode's estimate, or None (blind, without a strength estimator)."""
        rgb = rgb_array(rgb)
        if tile < 16 or tile % 2:
            raise ValueError(f"tile size must be even and at least 16, got {tile}")
        if ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {ENSEMBLES}, got {ensemble}")
        h, w = rgb.shape[:2]
        x = pad_to(rgb_tensor(rgb), 2)
        with fast_precision():
            if qp is None:
                cond = self.net.blind_conditions(x)
                told = self._estimated(cond)
            else:
                kind = CONDITIONS[self.condition]
                told = qp = min(max(qp, kind.low), kind.high)
                cond = qp_conditions(torch.tensor([qp]), kind=self.condition)
            res = torch.empty_like(x)
            windows = tile_windows(*x.shape[-2:], tile, self.context)
            for (rows, cols), (in_rows, in_cols), (out_rows, out_cols) in tiles_progress(
                windows, progress
            ):
                part = self._residual(x[..., rows, cols], cond, ensemble)
                res[..., out_rows, out_cols] = part[..., in_rows, in_cols]
        return rgb_uint8((x + self.residual_scale(qp, told) * res)[..., :h, :w]), told

    def restore_picture(
        self,
        image: Image.Image,
        qp: float | None = None,
        tile: int = DEFAULT_TILE,
        ensemble: int = DEFAULT_ENSEMBLE,
        progress: bool = False,
    ) -> tuple[Image.Image, float | None]:
        """:meth:`restore` of a PIL picture, its pixels as they are (no colour conversion:
        the source's ICC profile still describes the output): grayscale stays grayscale,
        16-bit samples keep their top 8 bits, an alpha channel passes through unchanged."""
        rgb, channels = pixels(image)
        restored, told = self.restore(rgb, qp, tile, ensemble, progress)
        out = to_pil(restored, channels)
        if image.has_transparency_data:
            out.putalpha(image.convert("LA" if channels == 1 else "RGBA").getchannel("A"))
        return out, told

    def _estimated(self, cond: torch.Tensor) -> float | None:
        """The value blind conditioning rows tell the filter, or None without an estimator."""
        if self.net.estimator is None:
            return None
        return float(CONDITIONS[self.condition].denormalize(cond[0, 0]))

    def _residual(self, x: torch.Tensor, cond: torch.Tensor, ensemble: int) -> torch.Tensor:
        """The network's correction of ``x`` (sides even, so that flips keep the 2x2 pixel
        groups of the half-resolution trunk), averaged over ``ensemble`` flips."""
        x = x.contiguous(memory_format=torch.channels_last)
        parts = [flip(self.net.residual(flip(x, k), cond), k).float() for k in range(ensemble)]
        return torch.stack(parts).mean(dim=0)


@functools.lru_cache(maxsize=4)
def load_filter(weights: str | None = None) -> PostFilter:
    """The post-filter of a weights file (default: the shipped one), loaded once."""
    return PostFilter(weights)


def filter_for(
    condition: str, weights: Path | str | None = None, *, video: bool = False
) -> PostFilter:
    """The post-filter of ``weights`` (default: the shipped one of ``condition``, the video
    one for HEVC ``video``), loaded once; :class:`PostFilterError` unless it is told that
    kind of value (``"qp"``: HEVC decodes, ``"quality"``: our codec's)."""
    if weights is None:
        weights = VIDEO_WEIGHTS if video and condition == "qp" else FILTER_WEIGHTS[condition]
    path = str(weights)
    pf = load_filter(path)
    if pf.condition != condition:
        have, want = CONDITIONS[pf.condition].meaning, CONDITIONS[condition].meaning
        raise PostFilterError(f"{path} is a post-filter for {have}, not for {want}")
    return pf


def enhance(
    image: Image.Image,
    qp: float | None = None,
    *,
    weights: Path | str | None = None,
    tile: int = DEFAULT_TILE,
    ensemble: int = DEFAULT_ENSEMBLE,
) -> Image.Image:
    """Remove HEVC/HEIC coding artefacts from a decoded picture; blind when ``qp`` is None.

    ``qp`` is the HEVC QP the picture was coded with (an HEIC ``quality`` q maps to QP
    ``postfilter.heic.quality_to_qp(q)``); blind, the filter estimates it from the picture.
    ``ensemble``: the number of flips the correction is averaged over (1, 2 or 4).
    Grayscale stays grayscale; an alpha channel passes through unchanged.
    """
    return filter_for("qp", weights).restore_picture(image, qp, tile, ensemble)[0]


def lcodec_enhancer(
    header: Header, weights: Path | str | None = None, progress: bool = False
) -> Callable[[Image.Image], Image.Image]:
    """The artefact filter for the picture our codec decodes from a file with ``header``:
    told the file's quality level, in float32 on one thread in the default tiles, so that
    the pixels depend on the file alone, not on the thread count
    (:func:`codec.determinism.one_thread`; the summation order of a convolution can depend
    on its input's size, so the tiles are not an option here); without the self-ensemble,
    which would make that path 2x slower; grayscale stays grayscale.  ``progress``: a bar
    over the tiles of a large picture.

    Checked here, before anything is decoded: files of the low-rate mode (coded downscaled,
    restored by super-resolution) are refused, and so are weights of HEVC filters.
    """
    if header.downscale > 1:
        raise PostFilterError(
            "the artefact filter takes full-size files; this one is coded at "
            f"1/{header.downscale} size (low-rate mode)"
        )
    pf = filter_for("quality", weights)

    def restore(image: Image.Image) -> Image.Image:
        with one_thread():
            restored = pf(rgb_array(image), header.quality, ensemble=1, progress=progress)
            out = Image.fromarray(restored)
        return out.convert("L") if image.mode == "L" else out

    return restore


def decode_enhanced(
    data: bytes,
    *,
    model: Codec | None = None,
    weights: Path | str | None = None,
) -> Image.Image:
    """Decode an ``.lcf`` file with ``model`` (default: the shipped codec) and remove its
    coding artefacts with the filter of our codec's decodes (default: the shipped one), told
    the file's quality level: ``lcodec decode --enhance artifacts``."""
    import codec
    from bitstream import unpack

    restore = lcodec_enhancer(unpack(data)[0], weights)  # checks before decoding
    return restore(codec.decode(data) if model is None else model.decode(data))
