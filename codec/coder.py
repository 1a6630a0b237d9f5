"""Pictures to lcodec files and back, with a loaded model.

Encoding: pad -> ``g_a`` (in bands) -> per quality: gains, importance levels,
``h_a`` -> ``z`` symbols -> exact ``h_s`` -> table indices and means -> ``y``
symbols -> range coder -> container.  Decoding runs the same path backwards;
everything that selects a probability table is computed in exact arithmetic
(:mod:`codec.integer_net`), so a file decodes the same everywhere.

The analysis runs over horizontal bands and the synthesis over tiles, both with
overlapping margins, so memory stays bounded for large pictures.  The layout
depends only on the picture size, never on the machine, so the decoded pixels do
not either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from bitstream import BitstreamError, Header, pack, unpack
from bitstream.ans import TableSet
from bitstream.container import FLAG_GRAYSCALE, MAX_SIDE

from . import entropy_models as em
from .image import ImageError, Picture, to_picture, to_pil
from .importance import importance_levels, mask_from_levels
from .integer_net import IntegerSequential
from .zoo import LoadedWeights, load_weights

LATENT_STRIDE = 16  # pixels per latent position
BAND_ROWS = 16  # latent rows per band (analysis) and per tile (synthesis)
TILE_COLS = 64  # latent columns per synthesis tile
BAND_MARGIN = 4  # latent rows/columns of context on each side (covers the receptive field)
TAG_MAP, TAG_Z, TAG_Y = b"IMAP", b"HYPZ", b"LATY"
#: SYNTHESIS_NOTE: oneDNN's convolutions sum in an order that can depend on the thread
#: count, so decoded pixels differed between 1 and 2 threads.  The synthesis runs on
#: PyTorch's native convolutions instead, which gave identical pixels for 1 and 2 threads
#: on every picture we tried (tests/test_shipped_model.py).


class Codec:
    """A loaded model that codes many pictures: ``Codec().encode(img, quality=4)``."""

    def __init__(
        self, weights: LoadedWeights | str | Path | None = None, progress: bool = False
    ) -> None:
        """Load ``weights`` (default: shipped); ``progress`` shows bars on large pictures."""
        self.progress = progress
        if not isinstance(weights, LoadedWeights):
            weights = load_weights(weights)
        self.net = weights.network.eval()
        self.config = self.net.config
        self.model_id = weights.model_id
        self.digest = weights.digest
        self._h_s = IntegerSequential(self.net.h_s)
        self._y_tables = TableSet(weights.tables["y"])
        self._z_tables = TableSet(weights.tables["z"])
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
    ) -> bytes:
        """Code a picture at ``quality`` (1..qualities, default 4), or at the best
        quality whose file is at most ``target_bpp`` bits per pixel."""
        pic = image if isinstance(image, Picture) else to_picture(image)
        h, w = pic.rgb.shape[:2]
        if h > MAX_SIDE or w > MAX_SIDE:
            raise ImageError(f"image too large: {w}x{h} (at most {MAX_SIDE} per side)")
        features = self._analyse(pic.rgb)
        if target_bpp is None:
            return self._encode_at(
                pic, features, self._check_quality(4 if quality is None else quality)
            )
        if quality is not None:
            raise ValueError("give either quality or target_bpp, not both")
        if not target_bpp > 0:
            raise ValueError("target bpp must be positive")
        best, lo, hi = None, 1, self.qualities  # bpp grows with quality: bisect
        while lo <= hi:
            q = (lo + hi) // 2
            data = self._encode_at(pic, features, q)
            if len(data) * 8 / (h * w) <= target_bpp:
                best, lo = data, q + 1
            else:
                hi = q - 1
        if best is None:
            raise ValueError(f"no quality reaches {target_bpp} bpp (quality 1 needs more)")
        return best

    def _check_quality(self, quality: int) -> int:
        if not isinstance(quality, (int, np.integer)) or not 1 <= quality <= self.qualities:
            raise ValueError(f"quality must be an integer in 1..{self.qualities}")
        return int(quality)

    def _analyse(self, rgb: np.ndarray) -> Tensor:
        """Analysis output for the padded picture, computed band by band."""
        align = self.net.ALIGN
        h, w = rgb.shape[:2]
        rgb = np.pad(rgb, ((0, -h % align), (0, -w % align), (0, 0)), mode="edge")
        parts = []
        bands = _bands(rgb.shape[0] // LATENT_STRIDE, BAND_ROWS)
        for r0, r1, c0, c1 in self._progress(bands, "analysis"):
            band = torch.from_numpy(rgb[c0 * LATENT_STRIDE : c1 * LATENT_STRIDE].copy())
            out = self.net.g_a(band.permute(2, 0, 1).unsqueeze(0).float().div_(255.0))
            parts.append(out[:, :, r0 - c0 : r1 - c0])
        return torch.cat(parts, dim=2)

    def _encode_at(self, pic: Picture, features: Tensor, quality: int) -> bytes:
        q = torch.tensor([quality - 1])
        y, p = self.net.apply_quality(features, q)
        z = torch.round(self.net.h_a(y)).clamp_(-em.Z_TAIL, em.Z_TAIL)
        mean, table = self._hyper(z)
        symbols = torch.round(y.double() - mean).clamp_(-em.Y_TAIL, em.Y_TAIL)
        sections = []
        if self.config.importance:
            levels = importance_levels(p, self.config.levels).long()
            mask = mask_from_levels(levels, self.config.levels, self.config.m)
            sections.append((TAG_MAP, self._map_tables.encode(levels.numpy(), quality - 1)))
        else:
            mask = torch.ones_like(symbols, dtype=torch.bool)
        sections.append(
            (TAG_Z, self._z_tables.encode(z.long().numpy() + em.Z_TAIL, _channel_index(z)))
        )
        coded = symbols[mask].long().numpy() + em.Y_TAIL
        sections.append((TAG_Y, self._y_tables.encode(coded, table[mask].numpy())))
        h, w = pic.rgb.shape[:2]
        flags = FLAG_GRAYSCALE if pic.channels == 1 else 0
        header = Header(w, h, pic.channels, quality, self.model_id, self.digest, flags)
        return pack(header, sections)

    def _hyper(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Exact means (float64) and scale-table indices from the hyper-latent."""
        mean, log_scale = self.net.split_params(self._h_s(z))
        return mean, em.scale_index(log_scale)

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
        if set(sections) != expected:
            raise BitstreamError("file sections do not match the model")
        if not 1 <= header.quality <= self.qualities:
            raise BitstreamError(f"quality {header.quality} out of range for this model")
        ph = -(-header.height // self.net.ALIGN) * self.net.ALIGN
        pw = -(-header.width // self.net.ALIGN) * self.net.ALIGN
        lh, lw = ph // LATENT_STRIDE, pw // LATENT_STRIDE
        zshape = (1, self.config.nz, lh // 4, lw // 4)
        z_idx = _channel_index(torch.empty(zshape))
        z = self._z_tables.decode(sections[TAG_Z], z_idx, z_idx.size) - em.Z_TAIL
        z = torch.from_numpy(z.astype(np.float64)).reshape(zshape)
        mean, table = self._hyper(z)
        if self.config.importance:
            levels = self._map_tables.decode(sections[TAG_MAP], header.quality - 1, lh * lw)
            levels = torch.from_numpy(levels.astype(np.int64)).reshape(1, 1, lh, lw)
            mask = mask_from_levels(levels, self.config.levels, self.config.m)
        else:
            mask = torch.ones_like(mean, dtype=torch.bool)
        count = int(mask.sum())
        symbols = self._y_tables.decode(sections[TAG_Y], table[mask].numpy(), count)
        y_hat = mean.clone()
        y_hat[mask] += torch.from_numpy(symbols.astype(np.float64) - em.Y_TAIL)
        x = self._synthesize(y_hat.float(), header.quality)
        rgb = x[0, :, : header.height, : header.width].permute(1, 2, 0).numpy()
        return header, np.ascontiguousarray(rgb)

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
        rows, cols = _bands(y.shape[2], BAND_ROWS), _bands(y.shape[3], TILE_COLS)
        tiles = [(r, c) for r in rows for c in cols]
        for (r0, r1, a0, a1), (c0, c1, b0, b1) in self._progress(tiles, "synthesis"):
            tile = _synthesis(self.net.g_s, y[:, :, a0:a1, b0:b1])
            tile = tile[:, :, (r0 - a0) * s : (r1 - a0) * s, (c0 - b0) * s : (c1 - b0) * s]
            out[:, :, r0 * s : r1 * s, c0 * s : c1 * s] = tile.clamp_(0, 1).mul_(255).round_()
        return out

    def _progress(self, bands: list, desc: str):
        """``bands`` wrapped in a progress bar when that is wanted and worth it."""
        return tqdm(bands, desc=desc, disable=not self.progress or len(bands) < 8)


def _synthesis(g_s: torch.nn.Sequential, y: Tensor) -> Tensor:
    """``g_s(y)`` on PyTorch's native convolutions (see SYNTHESIS_NOTE)."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        return g_s(y)
    finally:
        torch.backends.mkldnn.enabled = before


def _bands(length: int, size: int) -> list[tuple[int, int, int, int]]:
    """Split ``length`` latent rows (or columns) into pieces of ``size``: for each, its
    (first, end) and the (first, end) of the piece with its context margins."""
    bands = []
    for r0 in range(0, length, size):
        r1 = min(length, r0 + size)
        bands.append((r0, r1, max(0, r0 - BAND_MARGIN), min(length, r1 + BAND_MARGIN)))
    return bands


def _channel_index(z: Tensor) -> np.ndarray:
    """Table index (the channel) of every element of a (1, C, H, W) tensor."""
    c = z.shape[1]
    return np.broadcast_to(np.arange(c).reshape(1, c, 1, 1), z.shape).ravel()
