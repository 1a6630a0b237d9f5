"""The lcodec video container (``.lcv``): a header, then one CRC-checked record per frame.

Layout (all integers little-endian)::

    magic        4 bytes  b"\\x89LCV"
    version      u8       VIDEO_FORMAT_VERSION
    flags        u8       0 (no flags defined yet)
    width        u32      frame size
    height       u32
    frames       u32      frame count (written last: 0 while the file is being written)
    fps_num      u32      frame rate as a fraction fps_num / fps_den
    fps_den      u32
    gop          u32      intra period requested by the encoder (0: only frame 0 is an
                          I-frame); the frame types below say what was actually coded
    intra_len    u8       length of the intra (image) model id
    intra_id     intra_len bytes of ASCII
    intra_digest 8 bytes  first bytes of SHA-256 of the image model's weights
    inter_len    u8       length of the inter (P-frame) model id; 0 when none was used
    inter_id     inter_len bytes of ASCII
    inter_digest 8 bytes  as intra_digest (zeros when no inter model was used)
    header_crc   u32      CRC32 of every header byte before it
    frames x:
      type       u8       0 = I-frame, 1 = P-frame
      length     u32      payload bytes
      crc        u32      CRC32 of type, length and payload
      payload    I-frame: a complete image-codec file (``bitstream.container``), so it
                 is self-describing; P-frame: the inter model's payload
    nothing after the last frame

Both directions stream: :class:`VideoWriter` appends records to a seekable binary file and
patches the frame count at :meth:`VideoWriter.close`; :func:`read_frames` yields records
one at a time, so memory does not grow with the frame count.  Damage inside a record
raises :class:`FrameDamaged`, which carries the index of the first damaged frame; damage
to the header raises a plain :class:`BitstreamError`.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import BinaryIO

from .container import BitstreamError, valid_size

VIDEO_MAGIC = b"\x89LCV"
VIDEO_FORMAT_VERSION = 1
FRAME_I, FRAME_P = 0, 1
FRAME_TYPES = {FRAME_I: "I", FRAME_P: "P"}
NO_DIGEST = bytes(8)
DEFAULT_GOP = 32  # intra period encoders request unless told otherwise
_FIXED = struct.Struct("<4sBBIIIIII")
_RECORD = struct.Struct("<BII")
_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_CHUNK = 1 << 20  # payloads are read in pieces, so a corrupted length allocates nothing big


class FrameDamaged(BitstreamError):
    """A frame record is truncated or corrupted; ``frame`` is its index (0-based), and
    every frame before it is intact."""

    def __init__(self, frame: int, message: str) -> None:
        super().__init__(message)
        self.frame = frame


@dataclass(frozen=True)
class VideoHeader:
    """What an ``.lcv`` file says about itself."""

    width: int
    height: int
    fps: Fraction
    gop: int
    intra_id: str
    intra_digest: bytes
    inter_id: str = ""
    inter_digest: bytes = NO_DIGEST
    frames: int = 0
    version: int = VIDEO_FORMAT_VERSION

    def pack(self) -> bytes:
        """The header bytes, CRC included."""
        fps = Fraction(self.fps)
        if not valid_size(self.width, self.height):
            raise ValueError(f"invalid frame size {self.width}x{self.height}")
        if fps <= 0 or fps.numerator >= 1 << 32 or fps.denominator >= 1 << 32:
            raise ValueError(f"frame rate {fps} is not a positive 32-bit fraction")
        if not 0 <= self.gop < 1 << 32 or not 0 <= self.frames < 1 << 32:
            raise ValueError("gop or frame count out of range")
        out = bytearray(
            _FIXED.pack(
                VIDEO_MAGIC,
                self.version,
                0,
                self.width,
                self.height,
                self.frames,
                fps.numerator,
                fps.denominator,
                self.gop,
            )
        )
        for model_id, digest in (
            (self.intra_id, self.intra_digest),
            (self.inter_id, self.inter_digest),
        ):
            raw = model_id.encode("ascii")
            if len(raw) > 255 or len(digest) != 8:
                raise ValueError("model id or digest out of range")
            out += _U8.pack(len(raw)) + raw + digest
        out += _U32.pack(zlib.crc32(out))
        return bytes(out)


def read_header(f: BinaryIO) -> VideoHeader:
    """Read and check the header at the current position of ``f``."""
    fixed = _read(f, _FIXED.size)
    if fixed[:4] != VIDEO_MAGIC:
        raise BitstreamError("not an lcodec video file (bad magic number)")
    raw, models = bytearray(fixed), []
    for _ in range(2):
        size = _read(f, 1)
        body = _read(f, size[0] + 8)
        raw += size + body
        models += [body[: size[0]], body[size[0] :]]
    (crc,) = _U32.unpack(_read(f, 4))
    if zlib.crc32(raw) != crc:
        raise BitstreamError("corrupted video header (CRC mismatch)")
    _, version, flags, width, height, frames, num, den, gop = _FIXED.unpack(fixed)
    if version != VIDEO_FORMAT_VERSION:
        raise BitstreamError(
            f"unsupported video format version {version} (this reader: {VIDEO_FORMAT_VERSION})"
        )
    if flags or not valid_size(width, height) or not num or not den:
        raise BitstreamError("invalid video header (flags, size or frame rate)")
    if frames == 0:
        raise BitstreamError("unfinished video file (no frame count: the encoder did not finish)")
    try:
        intra_id, inter_id = models[0].decode("ascii"), models[2].decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("corrupted video header (model id)") from None
    fps = Fraction(num, den)
    return VideoHeader(
        width, height, fps, gop, intra_id, models[1], inter_id, models[3], frames, version
    )


@dataclass(frozen=True)
class FrameRecord:
    """One frame as stored: its index, type (``FRAME_I`` or ``FRAME_P``) and payload."""

    index: int
    type: int
    payload: bytes

    @property
    def size(self) -> int:
        """Bytes the record takes in the file (record header included)."""
        return _RECORD.size + len(self.payload)

    @property
    def type_name(self) -> str:
        return FRAME_TYPES[self.type]


def read_frames(f: BinaryIO, header: VideoHeader) -> Iterator[FrameRecord]:
    """Yield the ``header.frames`` records that follow the header in ``f``, checking each.

    Raises :class:`FrameDamaged` at the first truncated or corrupted record, and (with
    ``frame`` equal to the frame count) if bytes follow the last one.
    """
    for index in range(header.frames):
        head = f.read(_RECORD.size)
        if len(head) < _RECORD.size:
            raise FrameDamaged(index, f"frame {index} is missing or cut short (file truncated)")
        frame_type, length, crc = _RECORD.unpack(head)
        payload = _read_payload(f, length)
        if len(payload) < length:
            raise FrameDamaged(index, f"frame {index} is cut short (file truncated)")
        if zlib.crc32(payload, zlib.crc32(head[:5])) != crc:
            raise FrameDamaged(index, f"frame {index} is corrupted (CRC mismatch)")
        if not _allowed(frame_type, index, header):
            raise FrameDamaged(index, f"frame {index} has an invalid frame type {frame_type}")
        yield FrameRecord(index, frame_type, payload)
    if f.read(1):
        raise FrameDamaged(header.frames, "unexpected bytes after the last frame")


def _allowed(frame_type: int, index: int, header: VideoHeader) -> bool:
    """Whether frame ``index`` may have ``frame_type``: the first frame is an I-frame, and
    P-frames need a P-frame model named in the header."""
    if frame_type == FRAME_P:
        return index > 0 and bool(header.inter_id)
    return frame_type == FRAME_I


class VideoWriter:
    """Writes an ``.lcv`` file to a seekable binary file object, frame by frame.

    ``close`` (or leaving the ``with`` block without an exception) patches the frame count
    into the header; a file whose writer was not closed reads as unfinished.
    """

    def __init__(self, f: BinaryIO, header: VideoHeader) -> None:
        self._f = f
        self._start = f.tell()
        self.header = replace(header, frames=0)
        self.frames = 0
        f.write(self.header.pack())

    def write(self, frame_type: int, payload: bytes) -> int:
        """Append one frame; return the bytes its record takes."""
        if not _allowed(frame_type, self.frames, self.header):
            raise ValueError(f"invalid frame type {frame_type} for frame {self.frames}")
        head = struct.pack("<BI", frame_type, len(payload))
        self._f.write(head + _U32.pack(zlib.crc32(payload, zlib.crc32(head))))
        self._f.write(payload)
        self.frames += 1
        return _RECORD.size + len(payload)

    def close(self) -> VideoHeader:
        """Patch the frame count into the header; return the final header."""
        if not self.frames:
            raise ValueError("a video needs at least one frame")
        self.header = replace(self.header, frames=self.frames)
        end = self._f.tell()
        self._f.seek(self._start)
        self._f.write(self.header.pack())
        self._f.seek(end)
        return self.header

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()


def _read(f: BinaryIO, size: int) -> bytes:
    """Exactly ``size`` header bytes from ``f``."""
    data = f.read(size)
    if len(data) < size:
        raise BitstreamError("truncated video header")
    return data


def _read_payload(f: BinaryIO, length: int) -> bytes:
    """Up to ``length`` bytes (fewer at the end of the file), read in bounded pieces."""
    parts, left = [], length
    while left:
        part = f.read(min(left, _CHUNK))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)
