"""Reading and writing uncompressed or classically coded video as RGB frames, with PyAV.

Inputs: anything FFmpeg demuxes (``.mp4``, ``.mkv``, ``.avi``, ``.y4m``, ...), raw
``.yuv`` files (8-bit ``yuv420p``, size and frame rate given) and folders of pictures (frame
rate given).  Outputs: ``.y4m`` (8-bit
``yuv420p``), ``.mkv`` with lossless FFV1 in RGB (``bgr0``, so the decoded RGB is kept
exactly), or a folder of PNG frames.  Both directions stream one frame at a time.

YUV and RGB are converted with BT.601 matrices, in the range the frame says (full for
JPEG-range sources, limited otherwise); written YUV is limited range.  The evaluation
converts with the same functions, so every codec is measured the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import ColorRange
from PIL import Image

RAW_SUFFIX = ".yuv"
VIDEO_SUFFIXES = {".mp4", ".mkv", ".avi", ".y4m", ".mov", ".webm", RAW_SUFFIX}
OUTPUTS = {".y4m": ("yuv4mpegpipe", "rawvideo", "yuv420p"), ".mkv": ("matroska", "ffv1", "bgr0")}


class VideoIOError(ValueError):
    """A video file that cannot be read or written (message names the file)."""


def to_rgb(frame: av.VideoFrame, full_range: bool | None = None) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 RGB array of a decoded frame (BT.601; full or limited range
    as ``full_range`` says, by default as the frame says)."""
    full = is_full_range(frame) if full_range is None else full_range
    return frame.to_ndarray(
        format="rgb24", src_colorspace="itu601", src_color_range="JPEG" if full else "MPEG"
    )


def to_yuv420(rgb: np.ndarray, full_range: bool = False) -> av.VideoFrame:
    """A ``yuv420p`` frame of an RGB array (BT.601; limited range unless ``full_range``)."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    return frame.reformat(
        format="yuv420p", dst_colorspace="itu601", dst_color_range="JPEG" if full_range else "MPEG"
    )


#: BT.601 RGB -> (Y, Cb, Cr) rows for full-range values; limited range scales Y by 219/255
#: and Cb, Cr by 224/255 (the offsets cancel in a change).
YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def is_full_range(frame: av.VideoFrame) -> bool:
    """Whether a decoded frame's YUV is full range (JPEG), as the frame says."""
    return frame.color_range == ColorRange.JPEG or frame.format.name.startswith("yuvj")


def add_rgb_change(
    frame: av.VideoFrame, before: np.ndarray, after: np.ndarray, full_range: bool
) -> av.VideoFrame:
    """The ``yuv420p`` ``frame`` plus the change ``after - before`` of its RGB picture,
    converted to YCbCr (BT.601, the frame's range) and, for chroma, averaged over 2x2.

    Writing a restored picture back as YUV this way keeps the decoded planes wherever the
    restoration changed nothing: a round trip through RGB instead costs the gamut clipping
    and double rounding of every pixel (0.2 dB Y-PSNR at QP 37, more than a filter gains).
    """
    scale = np.array([1.0, 1.0, 1.0]) if full_range else np.array([219, 224, 224]) / 255
    delta = (after.astype(np.float64) - before) @ (YCBCR * scale[:, None]).T
    h, w = delta.shape[:2]
    even = np.pad(delta[..., 1:], ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    chroma = even.reshape(even.shape[0] // 2, 2, even.shape[1] // 2, 2, 2).mean(axis=(1, 3))
    out = av.VideoFrame(w, h, "yuv420p")
    for plane, old, change in zip(
        out.planes, planes(frame), (delta[..., 0], chroma[..., 0], chroma[..., 1]), strict=True
    ):
        new = np.clip(np.rint(old + change), 0, 255).astype(np.uint8)
        rows = np.zeros((plane.height, plane.line_size), np.uint8)
        rows[:, : plane.width] = new
        plane.update(rows)
    out.color_range = ColorRange.JPEG if full_range else ColorRange.MPEG
    return out


def planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """The Y, U and V planes of a planar YUV frame as 2-D uint8 arrays (padding removed)."""
    out = []
    for p in frame.planes:
        rows = np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)
        out.append(rows[:, : p.width])
    return out


def parse_size(text: str) -> tuple[int, int]:
    """``"WxH"`` as ``(width, height)``."""
    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0):
        raise VideoIOError(f"bad frame size {text!r} (want WxH, e.g. 416x240)")
    return int(w), int(h)


def parse_fps(text: str) -> Fraction:
    """A frame rate such as ``25``, ``29.97`` or ``30000/1001``."""
    try:
        fps = Fraction(text).limit_denominator(1 << 20)
    except (ValueError, ZeroDivisionError):
        fps = Fraction(0)
    if fps <= 0:
        raise VideoIOError(f"bad frame rate {text!r} (want e.g. 25 or 30000/1001)")
    return fps


class ClipReader:
    """The frames of a video file as RGB arrays: ``with ClipReader(path) as clip``, then
    ``clip.width``, ``clip.height``, ``clip.fps``, ``clip.frames`` (None if unknown) and
    ``for rgb in clip``.  Raw ``.yuv`` needs ``size`` (width, height) and ``fps``.

    Frames are turned upright as the stream's display matrix says (phones film portrait
    video as landscape frames and a 90-degree rotation); ``clip.changes`` names that, and
    audio left behind, in words."""

    def __init__(
        self,
        path: str | Path,
        size: tuple[int, int] | None = None,
        fps: Fraction | None = None,
    ) -> None:
        self.path = Path(path)
        raw = self.path.suffix.lower() == RAW_SUFFIX
        if raw and (size is None or fps is None):
            raise VideoIOError(f"raw video {self.path} needs --size WxH and --fps F")
        if not raw and size is not None:
            raise VideoIOError("--size is only for raw .yuv input")
        if not self.path.is_file():
            raise VideoIOError(f"no such file: {self.path}")
        options, fmt = {}, None
        if raw:
            fmt, self.frames = "rawvideo", self._raw_frames(size)
            options = {"video_size": f"{size[0]}x{size[1]}", "pixel_format": "yuv420p"}
            options["framerate"] = str(fps)
        try:
            self._container = av.open(str(self.path), format=fmt, options=options)
        except av.FFmpegError as e:
            raise VideoIOError(f"cannot read video {self.path}: {e}") from None
        if not self._container.streams.video:
            self.close()
            raise VideoIOError(f"no video stream in {self.path}")
        self._stream = self._container.streams.video[0]
        self._decoded = self._container.decode(self._stream)
        try:
            self._first = self._next_frame(0)
        except VideoIOError:
            self.close()
            raise
        self._coded_size = (self._first.width, self._first.height)
        self.turns = round(self._first.rotation / 90) % 4  # counter-clockwise quarter turns
        self.width, self.height = self._coded_size[:: -1 if self.turns % 2 else 1]
        self.changes: list[str] = []
        if self.turns:
            turn = ("", "90 degrees counter-clockwise", "180 degrees", "90 degrees clockwise")
            self.changes.append(f"turned {turn[self.turns]} as its display matrix says")
        if self._container.streams.audio:
            self.changes.append("audio not coded")
        self.fps = fps or self._stream.average_rate or self._stream.guessed_rate
        if not self.fps:
            self.close()
            raise VideoIOError(f"unknown frame rate of {self.path}; give --fps")
        self.fps = Fraction(self.fps)
        if not raw:
            self.frames = self._stream.frames or None

    def _raw_frames(self, size: tuple[int, int]) -> int:
        """Frame count of a raw yuv420p file (which must hold whole frames)."""
        w, h = size
        frame_bytes = w * h + 2 * (-(-w // 2)) * (-(-h // 2))
        total = self.path.stat().st_size
        if total == 0 or total % frame_bytes:
            raise VideoIOError(
                f"raw video {self.path}: {total} bytes is not a whole number of {w}x{h}"
                f" yuv420p frames ({frame_bytes} bytes each)"
            )
        return total // frame_bytes

    def _next_frame(self, index: int) -> av.VideoFrame | None:
        """Frame ``index`` (counted from 0) from the decoder, None after the last one."""
        try:
            frame = next(self._decoded, None)
        except av.FFmpegError as e:
            raise VideoIOError(f"cannot decode frame {index} of {self.path}: {e}") from None
        if frame is None and index == 0:
            raise VideoIOError(f"no frames in {self.path}")
        return frame

    def __iter__(self) -> Iterator[np.ndarray]:
        frame, index = self._first, 0
        while frame is not None:
            if (frame.width, frame.height) != self._coded_size:
                raise VideoIOError(f"frame size changes at frame {index} of {self.path}")
            rgb = to_rgb(frame)
            yield np.ascontiguousarray(np.rot90(rgb, self.turns)) if self.turns else rgb
            index += 1
            frame = self._next_frame(index)
        if self.path.suffix.lower() == ".y4m":
            check_y4m_end(self.path, index)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> ClipReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Chroma subsampling (horizontal, vertical) of the 8-bit ``.y4m`` colour spaces (``C``
#: tag, by prefix: ``420jpeg``, ``420mpeg2``...); None: no chroma planes.
Y4M_CHROMA = {"420": (2, 2), "422": (2, 1), "444": (1, 1), "mono": None}


def check_y4m_end(path: Path, frames: int) -> None:
    """Raise VideoIOError if bytes follow the ``frames`` whole frames FFmpeg read from the
    ``.y4m`` file ``path``: a last frame cut short, which FFmpeg drops without a word.
    Checked where the layout is known: 8-bit colour spaces of :data:`Y4M_CHROMA`, and
    ``FRAME`` lines without parameters (the last one is looked for where that puts it)."""
    with open(path, "rb") as f:
        header = f.readline(4096)
        tags = {t[:1]: t[1:].decode("ascii", "replace") for t in header.split()[1:]}
        colour = tags.get(b"C", "420")
        base = next((k for k in Y4M_CHROMA if colour.startswith(k)), None)
        if base is None or "p1" in colour or b"W" not in tags or b"H" not in tags:
            return  # 10-bit and deeper, or unknown: not checked
        w, h = int(tags[b"W"]), int(tags[b"H"])
        sub = Y4M_CHROMA[base]
        chroma = 0 if sub is None else 2 * (-(-w // sub[0])) * (-(-h // sub[1]))
        stride = len(b"FRAME\n") + w * h + chroma
        last = len(header) + (frames - 1) * stride
        f.seek(last)
        if f.read(6) != b"FRAME\n":
            return
        size = f.seek(0, 2)
    if size > last + stride:
        raise VideoIOError(f"{path} ends in a frame cut short after frame {frames - 1}")


class FrameFolder:
    """The pictures of a folder, in name order, as the frames of a clip (what ``lcodec decode
    clip.lcv -o frames/`` writes), with :class:`ClipReader`'s interface; ``fps`` is needed.
    Each picture is read as :func:`codec.image.to_picture` reads pictures to code."""

    def __init__(self, path: str | Path, fps: Fraction | None) -> None:
        self.path = Path(path)
        if fps is None:
            raise VideoIOError(f"a folder of frames needs a frame rate: give --fps ({self.path})")
        pictures = Image.registered_extensions()
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in pictures)
        if not self.files:
            raise VideoIOError(f"no pictures in {self.path}")
        self._first = self._read(0)
        self.height, self.width = self._first.shape[:2]
        self.fps, self.frames, self.changes = Fraction(fps), len(self.files), []

    def _read(self, index: int) -> np.ndarray:
        from .image import ImageError, to_picture

        try:
            return to_picture(self.files[index]).rgb
        except ImageError as e:
            raise VideoIOError(f"frame {index}: {e}") from None

    def __iter__(self) -> Iterator[np.ndarray]:
        for index, path in enumerate(self.files):
            rgb = self._first if index == 0 else self._read(index)
            if rgb.shape[:2] != (self.height, self.width):
                h, w = rgb.shape[:2]
                raise VideoIOError(
                    f"frame {index} ({path.name}) is {w}x{h}, the first {self.width}x{self.height}"
                )
            yield rgb

    def __enter__(self) -> FrameFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def open_clip(
    path: str | Path, size: tuple[int, int] | None = None, fps: Fraction | None = None
) -> ClipReader | FrameFolder:
    """A reader of the video file, raw ``.yuv`` file (``size`` and ``fps`` given) or folder of
    frames (``fps`` given) at ``path``."""
    if Path(path).is_dir():
        if size is not None:
            raise VideoIOError("--size is only for raw .yuv input")
        return FrameFolder(path, fps)
    return ClipReader(path, size, fps)


def output_kind(path: str | Path) -> str:
    """``".y4m"`` or ``".mkv"`` for those files, ``"png"`` for a folder (no suffix)."""
    suffix = Path(path).suffix.lower()
    if suffix in OUTPUTS:
        return suffix
    if not suffix:
        return "png"
    raise VideoIOError(
        f"unknown video output {suffix!r}: use .y4m, .mkv (lossless FFV1) or a folder for PNGs"
    )


class ClipWriter:
    """Writes RGB frames to ``.y4m``, FFV1 ``.mkv`` or a folder of PNGs (``000000.png``...),
    chosen by :func:`output_kind`; a folder must exist."""

    def __init__(self, path: str | Path, width: int, height: int, fps: Fraction) -> None:
        self.path = Path(path)
        self.kind = output_kind(self.path)
        self.frames = 0
        self._container = None
        if self.kind == "png":
            return
        fmt, codec, pix_fmt = OUTPUTS[self.kind]
        try:
            self._container = av.open(str(self.path), "w", format=fmt)
            self._stream = self._container.add_stream(codec, rate=Fraction(fps))
        except av.FFmpegError as e:
            raise VideoIOError(f"cannot write video {self.path}: {e}") from None
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, pix_fmt

    def write(self, rgb: np.ndarray) -> None:
        """Append one ``(H, W, 3)`` uint8 frame."""
        if self._container is None:
            Image.fromarray(rgb).save(self.path / f"{self.frames:06d}.png")
        else:
            if self._stream.pix_fmt == "yuv420p":
                frame = to_yuv420(rgb)
            else:  # RGB into FFV1: lossless
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                frame = frame.reformat(format=self._stream.pix_fmt)
            self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self._container is not None:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._container is not None:
            self._container.close()
