"""Pictures to lcodec files and back, with a loaded model.

Encoding: pad -> ``g_a`` (in bands) -> per quality: gains, importance levels,
``h_a`` -> ``z`` symbols -> exact ``h_s`` -> table indices and means -> ``y``
symbols -> range coder -> container.  Decoding runs the same path backwards;
everything that selects a probability table is computed in exact arithmetic
(:mod:`codec.integer_net`), so a file decodes the same everywhere.

The analysis runs over horizontal bands and the synthesis over tiles, both with
overlapping margins, so memory stays bounded for large pictures.  The layout
depends only on the picture size, and the synthesis tiles run side by side on one
thread each (:mod:`codec.determinism`), so the decoded pixels do not depend on the
thread count.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from bitstream import BitstreamError, Header, pack, unpack
from bitstream.ans import TableSet
from bitstream.container import FLAG_GRAYSCALE, MAX_SIDE, downscale_flag

from . import lowrate
from .determinism import map_one_thread
from .errors import check_quality
from .image import ImageError, Picture, to_picture, to_pil
from .importance import importance_levels, mask_from_levels
from .latent_coder import LatentCoder
from .lowrate import TAG_UPSCALER, Upscaler
from .refine import refine as refine_features
from .tiling import LATENT_STRIDE, bands, pad_edges
from .zoo import LoadedWeights, load_weights

BAND_ROWS = 16  # latent rows per band (analysis) and per tile (synthesis)
TILE_COLS = 64  # latent columns per synthesis tile
TAG_MAP, TAG_Z, TAG_Y = b"IMAP", b"HYPZ", b"LATY"


class Codec:
    """A loaded model that codes many pictures: ``Codec().encode(img, quality=4)``."""

    def __init__(
        self,
        weights: LoadedWeights | str | Path | None = None,
        progress: bool = False,
        sr_weights: dict[int, str | Path] | None = None,
    ) -> None:
        """Load ``weights`` (default: shipped); ``progress`` shows bars on large pictures;
        ``sr_weights`` replaces the shipped super-resolution networks of the low-rate mode
        (by factor), loaded when first needed."""
        self.progress = progress
        self._sr_weights = dict(sr_weights or {})
        self._upscalers: dict[int, Upscaler] = {}
        if not isinstance(weights, LoadedWeights):
            weights = load_weights(weights)
        self.net = weights.network.eval()
        self.config = self.net.config
        self.model_id = weights.model_id
        self.digest = weights.digest
        self._latent = LatentCoder(self.net, weights.tables["z"], TableSet(weights.tables["y"]))
        self._map_tables = TableSet(weights.tables["map"])

    @property
    def qualities(self) -> int:
        """Number of quality levels; valid qualities are 1..qualities."""
        return self.config.qualities

    # -- encoding ---------------------------------------------------------------------
    @torch.no_grad()
    def encode(
        self,
        image: Image.Image | np.ndarray | str | Path,
        quality: int | None = None,
        target_bpp: float | None = None,
        downscale: int | None = None,
        refine: int = 0,
    ) -> bytes:
        """Code a picture at ``quality`` (1..qualities, default 4), or at the best
        quality whose file is at most ``target_bpp`` bits per pixel.

        ``refine`` > 0 optimises the latent for that many gradient steps before coding
        it (:mod:`codec.refine`): smaller files for the same quality, the encoder about
        0.9 s per step and megapixel slower (2 cores); decoding is unchanged.

        ``downscale`` 2 or 4 is the low-rate mode (:mod:`codec.lowrate`): the picture is
        coded at that fraction of its size and super-resolved when decoded.  Left at None,
        it is 1, except with ``target_bpp``: when no quality fits at full size, the low-rate
        mode at 2, then 4, is tried (on Kodak it beats full-size coding below about
        0.25 bpp, where full size cannot go; ``results/lowrate.json``).
        """
        pic = image if isinstance(image, Picture) else to_picture(image)
        h, w = pic.rgb.shape[:2]
        if h > MAX_SIDE or w > MAX_SIDE:
            raise ImageError(f"image too large: {w}x{h} (at most {MAX_SIDE} per side)")
        if downscale is not None:
            downscale_flag(downscale)  # a bad factor fails before any work
        if not isinstance(refine, (int, np.integer)) or refine < 0:
            raise ValueError("refine must be a whole number of steps, 0 or more")
        analysed: dict[int, tuple[np.ndarray, Tensor]] = {}  # picture coded, its features

        def encode_at(q: int, factor: int) -> bytes:
            if factor not in analysed:
                coded = lowrate.downscale(pic.rgb, factor) if factor > 1 else pic.rgb
                analysed[factor] = coded, self._analyse(coded)
            coded, features = analysed[factor]
            if refine:
                x = torch.from_numpy(pad_edges(coded, self.net.ALIGN)).permute(2, 0, 1)[None]
                features = refine_features(
                    self.net,
                    features,
                    x.float() / 255,
                    coded.shape[:2],
                    q,
                    int(refine),
                    progress=self.progress,
                )
            return self._encode_at(pic, features, q, factor)

        if target_bpp is None:
            return encode_at(
                check_quality(4 if quality is None else quality, self.qualities), downscale or 1
            )
        if quality is not None:
            raise ValueError("give either quality or target_bpp, not both")
        if not target_bpp > 0:
            raise ValueError("target bpp must be positive")
        for factor in (downscale,) if downscale else lowrate.FACTORS:
            best, lo, hi = None, 1, self.qualities  # bpp grows with quality: bisect
            while lo <= hi:
                q = (lo + hi) // 2
                data = encode_at(q, factor)
                if len(data) * 8 / (h * w) <= target_bpp:
                    best, lo = data, q + 1
                else:
                    hi = q - 1
            if best is not None:
                return best
        raise ValueError(f"no quality reaches {target_bpp} bpp (quality 1 needs more)")

    def _analyse(self, rgb: np.ndarray) -> Tensor:
        """Analysis output for the padded picture, computed band by band."""
        rgb = pad_edges(rgb, self.net.ALIGN)
        parts = []
        pieces = bands(rgb.shape[0] // LATENT_STRIDE, BAND_ROWS)
        for r0, r1, c0, c1 in self._progress(pieces, "analysis"):
            band = torch.from_numpy(rgb[c0 * LATENT_STRIDE : c1 * LATENT_STRIDE].copy())
            out = self.net.g_a(band.permute(2, 0, 1).unsqueeze(0).float().div_(255.0))
            parts.append(out[:, :, r0 - c0 : r1 - c0])
        return torch.cat(parts, dim=2)

    def _encode_at(self, pic: Picture, features: Tensor, quality: int, factor: int) -> bytes:
        """The file at ``quality`` from the analysis ``features`` of ``pic`` at 1/``factor``
        of its size."""
        flags = downscale_flag(factor)
        extra = [(TAG_UPSCALER, self.upscaler(factor).section())] if factor > 1 else []
        q = torch.tensor([quality - 1])
        y, p = self.net.apply_quality(features, q)
        sections, mask = [], None
        if self.config.importance:
            levels = importance_levels(p, self.config.levels).long()
            mask = mask_from_levels(levels, self.config.levels, self.config.m)
            sections.append((TAG_MAP, self._map_tables.encode(levels.numpy(), quality - 1)))
        z_data, y_data, _ = self._latent.encode(y, mask)
        sections += [(TAG_Z, z_data), (TAG_Y, y_data)]
        h, w = pic.rgb.shape[:2]
        flags |= FLAG_GRAYSCALE if pic.channels == 1 else 0
        header = Header(w, h, pic.channels, quality, self.model_id, self.digest, flags)
        return pack(header, sections + extra)

    # -- decoding ---------------------------------------------------------------------
    def decode(self, data: bytes) -> Image.Image:
        """Decode a file to a PIL image (mode ``RGB``, or ``L`` for grayscale sources)."""
        header, rgb = self.decode_array(data)
        return to_pil(rgb, header.channels)

    @torch.no_grad()
    def decode_array(self, data: bytes) -> tuple[Header, np.ndarray]:
        """Decode a file to its header and an ``(H, W, 3)`` uint8 array."""
        header, sections = unpack(data)
        self._check_model(header)
        expected = {TAG_Z, TAG_Y} | ({TAG_MAP} if self.config.importance else set())
        factor = header.downscale
        if factor > 1:
            expected.add(TAG_UPSCALER)
        if set(sections) != expected:
            raise BitstreamError("file sections do not match the model")
        if not 1 <= header.quality <= self.qualities:
            raise BitstreamError(f"quality {header.quality} out of range for this model")
        if factor > 1:
            upscaler = self.upscaler(factor)
            upscaler.check(sections[TAG_UPSCALER])
        height, width = -(-header.height // factor), -(-header.width // factor)
        ph = -(-height // self.net.ALIGN) * self.net.ALIGN
        pw = -(-width // self.net.ALIGN) * self.net.ALIGN
        lh, lw = ph // LATENT_STRIDE, pw // LATENT_STRIDE
        mask = None
        if self.config.importance:
            levels = self._map_tables.decode(sections[TAG_MAP], header.quality - 1, lh * lw)
            levels = torch.from_numpy(levels.astype(np.int64)).reshape(1, 1, lh, lw)
            mask = mask_from_levels(levels, self.config.levels, self.config.m)
        zshape = (1, self.config.nz, lh // 4, lw // 4)
        y_hat = self._latent.decode(sections[TAG_Z], sections[TAG_Y], zshape, mask)
        x = self._synthesize(y_hat.float(), header.quality)
        rgb = np.ascontiguousarray(x[0, :, :height, :width].permute(1, 2, 0).numpy())
        if factor > 1:
            rgb = np.ascontiguousarray(upscaler(rgb)[: header.height, : header.width])
        return header, rgb

    def upscaler(self, factor: int) -> Upscaler:
        """The super-resolution network of the low-rate mode at ``factor``, loaded once."""
        if factor not in self._upscalers:
            self._upscalers[factor] = Upscaler(factor, self._sr_weights.get(factor))
        return self._upscalers[factor]

    def _check_model(self, header: Header) -> None:
        if header.model_id != self.model_id or header.digest != self.digest:
            raise BitstreamError(
                f"file was coded with model {header.model_id} ({header.digest.hex()}), "
                f"loaded model is {self.model_id} ({self.digest.hex()})"
            )

    def _synthesize(self, y_hat: Tensor, quality: int) -> Tensor:
        """Pixels (uint8, padded size) from the latent, tile by tile."""
        q = torch.tensor([quality - 1])
        y = y_hat / self.net.gain(q)
        s = LATENT_STRIDE
        out = torch.empty((1, 3, y.shape[2] * s, y.shape[3] * s), dtype=torch.uint8)
        rows, cols = bands(y.shape[2], BAND_ROWS), bands(y.shape[3], TILE_COLS)
        tiles = [(r, c) for r in rows for c in cols]

        def synthesize(tile: tuple) -> Tensor:
            (r0, r1, a0, a1), (c0, c1, b0, b1) = tile
            x = self.net.g_s(y[:, :, a0:a1, b0:b1])
            return x[:, :, (r0 - a0) * s : (r1 - a0) * s, (c0 - b0) * s : (c1 - b0) * s]

        done = self._progress(map_one_thread(synthesize, tiles), "synthesis", len(tiles))
        for ((r0, r1, _, _), (c0, c1, _, _)), x in zip(tiles, done, strict=True):
            out[:, :, r0 * s : r1 * s, c0 * s : c1 * s] = x.clamp_(0, 1).mul_(255).round_()
        return out

    def _progress(self, bands: Iterable, desc: str, total: int | None = None):
        """``bands`` (``total`` of them, default ``len(bands)``) wrapped in a progress bar
        when that is wanted and worth it."""
        total = len(bands) if total is None else total
        return tqdm(bands, desc=desc, total=total, disable=not self.progress or total < 8)
