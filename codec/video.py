"""Video coding on top of the image codec: ``.lcv`` files (:mod:`bitstream.video`).

Coding structure: low delay, no frame reordering.  Frame ``i`` is planned as an I-frame
when ``i == 0`` or ``gop > 0 and i % gop == 0`` and as a P-frame otherwise, predicted from
the previous *decoded* frame by a :class:`PFrameCoder`.  I-frames are image-codec files.

A planned P-frame is coded as an I-frame instead where that costs less in the quality's
rate-distortion trade-off (:meth:`VideoCodec._cheaper`; scene cuts, motion the P-frame model
cannot follow); ``lcodec info`` lists the types actually coded.  The I-frame is only tried
where the P-frame's cost comes near the latest I-frame's or jumps from the previous frame's
(:attr:`VideoCodec.intra_trial`), which spares most P-frames a third of their coding time.

P-frames are coded by :class:`codec.inter_coder.InterCoder`: the shipped P-frame model
(:meth:`VideoCodec.shipped`, what the functions below use by default) or any other
(``VideoCodec(image, InterCoder(path))``).  Without one (``VideoCodec(image)``) every frame
is coded as an I-frame, whatever ``gop`` says; the header keeps the requested ``gop`` and
each frame record its actual type, so ``lcodec info`` shows both.

Quick use::

    from codec.video import decode_video, encode_video
    encode_video("clip.mp4", "clip.lcv", quality=4, gop=32)
    decode_video("clip.lcv", "out.y4m")           # or .mkv (FFV1 RGB), or a folder of PNGs

Everything streams: memory does not grow with the number of frames.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

import numpy as np
from tqdm import tqdm

from bitstream import BitstreamError, unpack
from bitstream.video import (
    DEFAULT_GOP,
    FRAME_I,
    FRAME_P,
    FRAME_TYPES,
    FrameDamaged,
    FrameRecord,
    VideoHeader,
    VideoWriter,
    read_frames,
    read_header,
)

from .errors import check_quality
from .video_io import ClipWriter, open_clip

if TYPE_CHECKING:
    from .coder import Codec

__all__ = [
    "DEFAULT_GOP",
    "CodedFrame",
    "PFrameCoder",
    "VideoCodec",
    "VideoSummary",
    "decode_video",
    "encode_video",
    "iter_frames",
    "planned_type",
    "scan_video",
]


class PFrameCoder(Protocol):
    """The seam for a learned inter coder (motion, flow coding, warping, residual coding).

    ``encode`` returns the P-frame payload and the frame the decoder will reconstruct from
    it (the next frame's reference); ``decode`` must reproduce that reconstruction exactly.
    Frames are ``(H, W, 3)`` uint8 RGB arrays.  ``model_id`` and ``digest`` (8 bytes) go
    into the video header; ``qualities`` is the number of quality levels it codes.
    """

    model_id: str
    digest: bytes
    qualities: int

    def encode(
        self, frame: np.ndarray, reference: np.ndarray, quality: int
    ) -> tuple[bytes, np.ndarray]: ...

    def decode(self, payload: bytes, reference: np.ndarray) -> np.ndarray: ...


def planned_type(index: int, gop: int) -> int:
    """The type the coding structure gives frame ``index``: I at each intra period."""
    return FRAME_I if index == 0 or (gop > 0 and index % gop == 0) else FRAME_P


@dataclass(frozen=True)
class CodedFrame:
    """One frame as coded or stored: index, type (``"I"``/``"P"``) and record bytes."""

    index: int
    type: str
    bytes: int
    quality: int | None = None  # I-frames: the image codec's quality


@dataclass
class _Costs:
    """Trade-off costs (:meth:`VideoCodec._cost`) the encoder has seen in one video."""

    intra: float = 0.0  # the latest frame coded as an I-frame (0: none yet, always try)
    previous: float = 0.0  # the previous frame


class VideoCodec:
    """A loaded image codec (I-frames) and optional P-frame coder, to code many videos."""

    #: A planned P-frame is also coded as an I-frame, to keep the cheaper, where its cost
    #: reaches ``share`` times the latest I-frame's or ``jump`` times the previous frame's.
    #: Chosen on crops of the training clips, where an I-frame won only at a P/I cost ratio
    #: near 1 or at a scene cut; on the test sequences it codes the same bytes as trying
    #: every P-frame (``benchmarks/intra_trial.py``), which ``(0, 0)`` does.
    intra_trial: tuple[float, float] = (0.85, 1.5)

    def __init__(
        self,
        image: Codec | None = None,
        inter: PFrameCoder | None = None,
        choose_intra: bool = True,
    ) -> None:
        """``image`` defaults to the shipped image model; ``inter`` to none (all-intra).
        ``choose_intra``: code a planned P-frame as an I-frame where that is cheaper."""
        if image is None:
            from .coder import Codec  # not at the top: it loads PyTorch (seconds)

            image = Codec()
        self.image = image
        self.inter = inter
        self.choose_intra = choose_intra

    @property
    def qualities(self) -> int:
        """Number of quality levels (1..qualities): the image model's, or the P-frame
        model's where that has fewer (a quality codes I- and P-frames alike)."""
        if self.inter is None:
            return self.image.qualities
        return min(self.image.qualities, self.inter.qualities)

    @classmethod
    def shipped(cls, image: Codec | None = None) -> VideoCodec:
        """``image`` (default: the shipped image model) with the shipped P-frame model, or
        all-intra where its weights file is not installed."""
        from .inter_coder import InterCoder
        from .inter_weights import DEFAULT_INTER_WEIGHTS

        inter = InterCoder(DEFAULT_INTER_WEIGHTS) if DEFAULT_INTER_WEIGHTS.is_file() else None
        return cls(image, inter)

    def frame_type(self, index: int, gop: int) -> int:
        """The type frame ``index`` is coded as: planned, or I while there is no inter coder."""
        return FRAME_I if self.inter is None else planned_type(index, gop)

    def encode_frames(
        self,
        frames: Iterable[np.ndarray],
        out: BinaryIO,
        fps: Fraction,
        quality: int = 4,
        gop: int = DEFAULT_GOP,
    ) -> Iterator[CodedFrame]:
        """Code RGB ``frames`` into ``out`` (seekable) as an ``.lcv`` file, yielding each
        frame's record as it is written; the file is complete once the iterator is."""
        quality = check_quality(quality, self.qualities)
        if gop < 0:
            raise ValueError("gop must be 0 (one I-frame) or a positive intra period")
        writer, reference, costs = None, None, _Costs()
        for index, rgb in enumerate(frames):
            if writer is None:
                writer = VideoWriter(out, self._header(rgb.shape, fps, gop))
            elif rgb.shape[:2] != (writer.header.height, writer.header.width):
                raise ValueError(f"frame {index} has a different size")
            frame_type = self.frame_type(index, gop)
            if frame_type == FRAME_I:
                payload = self.image.encode(rgb, quality=quality)
                if self.inter is not None:
                    reference = self.image.decode_array(payload)[1]
                    costs.intra = costs.previous = self._cost(rgb, payload, reference, quality)
            elif self.choose_intra:
                frame_type, payload, reference = self._cheaper(rgb, reference, quality, costs)
            else:
                payload, reference = self.inter.encode(rgb, reference, quality)
            size = writer.write(frame_type, payload)
            yield CodedFrame(index, FRAME_TYPES[frame_type], size, _quality(frame_type, quality))
        if writer is None:
            raise ValueError("no frames to code")
        writer.close()

    def _cheaper(
        self, rgb: np.ndarray, reference: np.ndarray, quality: int, costs: _Costs
    ) -> tuple[int, bytes, np.ndarray]:
        """(type, payload, reconstruction) of a planned P-frame: the P-frame, or the I-frame
        where that costs less (:meth:`_cost`) and the P-frame's cost made it worth trying
        (:attr:`intra_trial`).  A P-frame model that predicts badly (fast motion, a scene
        cut) then never makes a file much worse than coding the frame alone."""
        payload, recon = self.inter.encode(rgb, reference, quality)
        cost = self._cost(rgb, payload, recon, quality)
        share, jump = self.intra_trial
        choice = FRAME_P, payload, recon
        if cost >= share * costs.intra or cost >= jump * costs.previous:
            intra = self.image.encode(rgb, quality=quality)
            intra_recon = self.image.decode_array(intra)[1]
            intra_cost = self._cost(rgb, intra, intra_recon, quality)
            if intra_cost < cost:
                choice, cost, costs.intra = (FRAME_I, intra, intra_recon), intra_cost, intra_cost
        costs.previous = cost
        return choice

    def _cost(self, rgb: np.ndarray, payload: bytes, recon: np.ndarray, quality: int) -> float:
        """``bpp + lambda * 255^2 * MSE`` of a coded frame: the models' training loss at
        ``quality``."""
        lam = self.image.config.lambdas[quality - 1] * 255.0**2
        mse = np.mean((recon.astype(np.float64) - rgb) ** 2) / 255.0**2
        return 8 * len(payload) / (rgb.shape[0] * rgb.shape[1]) + lam * mse

    def _header(self, shape: tuple[int, ...], fps: Fraction, gop: int) -> VideoHeader:
        inter = {}
        if self.inter is not None:
            inter = {"inter_id": self.inter.model_id, "inter_digest": self.inter.digest}
        h, w = shape[:2]
        return VideoHeader(w, h, fps, gop, self.image.model_id, self.image.digest, **inter)

    def check(self, header: VideoHeader) -> None:
        """Raise BitstreamError unless the loaded models are those ``header`` names."""
        if (header.intra_id, header.intra_digest) != (self.image.model_id, self.image.digest):
            raise BitstreamError(
                f"video was coded with image model {header.intra_id}"
                f" ({header.intra_digest.hex()}), loaded model is {self.image.model_id}"
                f" ({self.image.digest.hex()})"
            )
        if header.inter_id and (
            self.inter is None
            or (header.inter_id, header.inter_digest) != (self.inter.model_id, self.inter.digest)
        ):
            raise BitstreamError(f"video needs P-frame model {header.inter_id}, not loaded")

    def decode_frames(
        self, header: VideoHeader, records: Iterable[FrameRecord]
    ) -> Iterator[np.ndarray]:
        """Decode ``records`` (from :func:`bitstream.video.read_frames`) to RGB frames.

        A record whose payload does not decode raises :class:`FrameDamaged` with its index.
        """
        self.check(header)
        reference = None
        for record in records:
            try:
                if record.type == FRAME_P:
                    if self.inter is None or not header.inter_id:
                        raise BitstreamError("P-frame in a file that names no P-frame model")
                    rgb = self.inter.decode(record.payload, reference)
                else:
                    image_header, rgb = self.image.decode_array(record.payload)
                    if (image_header.width, image_header.height) != (header.width, header.height):
                        raise BitstreamError("I-frame size differs from the video's")
            except FrameDamaged:
                raise
            except BitstreamError as e:
                raise _corrupted(record.index, e) from e
            reference = rgb
            yield rgb


def _corrupted(index: int, error: BitstreamError) -> FrameDamaged:
    """A frame whose record is intact but whose payload does not decode."""
    return FrameDamaged(index, f"frame {index} is corrupted ({error})")


def _quality(frame_type: int, quality: int) -> int | None:
    return quality if frame_type == FRAME_I else None


@dataclass
class VideoSummary:
    """What a file holds (or a coding run wrote): header, frames and their types."""

    header: VideoHeader
    frames: list[CodedFrame] = field(default_factory=list)
    damage: FrameDamaged | None = None  # the first damaged frame, when there is one
    changes: list[str] = field(default_factory=list)  # done to the source when coding it

    @property
    def bytes(self) -> int:
        return len(self.header.pack()) + sum(f.bytes for f in self.frames)

    @property
    def bpp(self) -> float:
        """Bits per pixel over all frames: file bits / (width * height * frames)."""
        h = self.header
        return self.bytes * 8 / (h.width * h.height * max(1, len(self.frames)))

    @property
    def types(self) -> dict[str, int]:
        """How many frames of each type were actually coded."""
        counts = Counter(f.type for f in self.frames)
        return {name: counts[name] for name in FRAME_TYPES.values()}


def scan_video(src: str | Path) -> VideoSummary:
    """Check every frame record of an ``.lcv`` file (CRCs, I-frame containers) without
    decoding pictures; damage is reported in ``damage`` (a bad header raises)."""
    with open(src, "rb") as f:
        header = read_header(f)
        summary = VideoSummary(header)
        try:
            for record in read_frames(f, header):
                quality = None
                if record.type == FRAME_I:
                    try:
                        quality = unpack(record.payload)[0].quality
                    except BitstreamError as e:
                        raise _corrupted(record.index, e) from e
                summary.frames.append(
                    CodedFrame(record.index, record.type_name, record.size, quality)
                )
        except FrameDamaged as e:
            summary.damage = e
    return summary


def iter_frames(src: str | Path, codec: VideoCodec | None = None) -> Iterator[np.ndarray]:
    """The decoded RGB frames of an ``.lcv`` file, one at a time."""
    codec = codec if codec is not None else VideoCodec.shipped()
    with open(src, "rb") as f:
        header = read_header(f)
        yield from codec.decode_frames(header, read_frames(f, header))


def encode_video(
    src: str | Path,
    dst: str | Path,
    quality: int = 4,
    gop: int = DEFAULT_GOP,
    *,
    size: tuple[int, int] | None = None,
    fps: Fraction | None = None,
    codec: VideoCodec | None = None,
    progress: bool = False,
) -> VideoSummary:
    """Code the video file or folder of frames ``src`` into the ``.lcv`` file ``dst``.

    ``size`` (width, height) and ``fps`` are needed for raw ``.yuv``, ``fps`` for a folder
    (:func:`codec.video_io.open_clip`); ``fps`` overrides the container's rate otherwise.
    ``progress`` shows a bar with frames per second.  ``dst`` is written in place; the CLI
    writes to a temporary file and renames it.
    """
    codec = codec if codec is not None else VideoCodec.shipped()
    with open_clip(src, size, fps) as clip, open(dst, "wb") as out:
        coded = codec.encode_frames(clip, out, clip.fps, quality, gop)
        frames = list(
            tqdm(coded, total=clip.frames, desc="encode", unit="frame", disable=not progress)
        )
    with open(dst, "rb") as f:
        return VideoSummary(read_header(f), frames, changes=clip.changes)


def decode_video(
    src: str | Path,
    dst: str | Path,
    salvage: bool = False,
    *,
    codec: VideoCodec | None = None,
    progress: bool = False,
) -> VideoSummary:
    """Decode the ``.lcv`` file ``src`` to ``dst``: ``.y4m``, FFV1 ``.mkv`` or an existing
    folder (PNG frames).

    A damaged file raises :class:`FrameDamaged` (naming the first damaged frame) before
    anything is decoded; with ``salvage`` the intact frames before the damage are written
    instead and the damage is returned in the summary's ``damage``.  A file damaged at its
    first frame raises even with ``salvage``: there is nothing to save.
    """
    summary = scan_video(src)
    damage = summary.damage
    if damage is not None and (not salvage or not summary.frames):
        raise damage
    codec = codec if codec is not None else VideoCodec.shipped()
    header = summary.header
    with open(src, "rb") as f, ClipWriter(dst, header.width, header.height, header.fps) as out:
        read_header(f)
        records = islice(read_frames(f, header), len(summary.frames))
        decoded = codec.decode_frames(header, records)
        total = len(summary.frames)
        try:
            for rgb in tqdm(
                decoded, total=total, desc="decode", unit="frame", disable=not progress
            ):
                out.write(rgb)
        except FrameDamaged as e:
            if not salvage or out.frames == 0:
                raise
            damage = e
    return VideoSummary(header, summary.frames[: out.frames], damage)
