"""The lcodec container: a fixed header, a section table and CRC-checked sections.

Layout (all integers little-endian)::

    magic      4 bytes  b"\\x89LCF"
    version    u8       FORMAT_VERSION
    kind       u8       0 = image
    flags      u8       bit 0: source was grayscale; bits 1-2: log2 of the low-rate
                        downscale factor (0: none, 1: x2, 2: x4; 3 is invalid); other
                        bits must be 0
    quality    u8       quality level the file was coded at (1-based)
    width      u32      picture size before padding
    height     u32
    channels   u8       channels of the decoded picture (1 or 3; 1 exactly when flag
                        bit 0 is set); width x height at most MAX_PIXELS
    id_len     u8       length of the model id
    model_id   id_len bytes of ASCII
    digest     8 bytes  first bytes of SHA-256 of the weights file
    n_sections u8
    n_sections x (tag 4 bytes, length u32, crc32 u32), each tag once
    header_crc u32      CRC32 of every header byte before it
    payloads            the sections, in table order, nothing after them

Everything decoding needs is in the file.  :func:`unpack` rejects anything that
does not match this layout exactly, with a :class:`BitstreamError` saying what.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

MAGIC = b"\x89LCF"
FORMAT_VERSION = 1
KIND_IMAGE = 0
FLAG_GRAYSCALE = 1
_DOWNSCALE_SHIFT, _DOWNSCALE_BITS = 1, 0b110
_KNOWN_FLAGS = FLAG_GRAYSCALE | _DOWNSCALE_BITS
DOWNSCALE_FACTORS = (1, 2, 4)
_FIXED = struct.Struct("<4sBBBBIIBB")
_SECTION = struct.Struct("<4sII")
_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
MAX_SIDE = 1 << 16
#: Largest picture (pixels) coded or decoded: bigger ones are refused, not swapped to death.
MAX_PIXELS = 16384 * 16384


def valid_size(width: int, height: int) -> bool:
    """Whether a picture of ``width`` x ``height`` is within the format's limits."""
    return 0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and width * height <= MAX_PIXELS


class BitstreamError(ValueError):
    """The bytes are not a valid lcodec file (foreign, truncated or corrupted)."""


@dataclass(frozen=True)
class Header:
    """What a file says about itself (sections aside)."""

    width: int
    height: int
    channels: int
    quality: int
    model_id: str
    digest: bytes
    flags: int = 0
    kind: int = KIND_IMAGE
    version: int = FORMAT_VERSION

    @property
    def downscale(self) -> int:
        """1, or the factor the picture was downscaled by before coding (low-rate mode);
        ``width`` and ``height`` are always those of the picture to decode to."""
        return 1 << ((self.flags & _DOWNSCALE_BITS) >> _DOWNSCALE_SHIFT)


def downscale_flag(factor: int) -> int:
    """The flag bits recording a low-rate downscale ``factor`` (1, 2 or 4)."""
    if factor not in DOWNSCALE_FACTORS:
        raise ValueError(f"downscale factor must be one of {DOWNSCALE_FACTORS}, got {factor}")
    return (factor.bit_length() - 1) << _DOWNSCALE_SHIFT


def pack(header: Header, sections: list[tuple[bytes, bytes]]) -> bytes:
    """Serialize ``header`` and ``(tag, payload)`` sections into one file."""
    model_id = header.model_id.encode("ascii")
    if len(model_id) > 255 or len(header.digest) != 8 or len(sections) > 255:
        raise ValueError("model id, digest or section count out of range")
    out = bytearray(
        _FIXED.pack(
            MAGIC,
            header.version,
            header.kind,
            header.flags,
            header.quality,
            header.width,
            header.height,
            header.channels,
            len(model_id),
        )
    )
    out += model_id + header.digest + _U8.pack(len(sections))
    for tag, payload in sections:
        if len(tag) != 4:
            raise ValueError("section tags are 4 bytes")
        out += _SECTION.pack(tag, len(payload), zlib.crc32(payload))
    out += _U32.pack(zlib.crc32(out))
    for _, payload in sections:
        out += payload
    return bytes(out)


def unpack(data: bytes) -> tuple[Header, dict[bytes, bytes]]:
    """Parse and check a file; returns the header and the sections by tag."""
    view = memoryview(data)
    if len(view) < 4 or bytes(view[:4]) != MAGIC:
        raise BitstreamError("not an lcodec file (bad magic number)")
    pos = _need(view, 0, _FIXED.size)
    _, version, kind, flags, quality, width, height, channels, id_len = _FIXED.unpack_from(view)
    if version != FORMAT_VERSION:
        raise BitstreamError(
            f"unsupported format version {version} (this reader: {FORMAT_VERSION})"
        )
    end = _need(view, pos, id_len + 8 + 1)
    try:
        model_id = bytes(view[pos : pos + id_len]).decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("corrupted header (model id)") from None
    digest = bytes(view[pos + id_len : pos + id_len + 8])
    (count,) = _U8.unpack_from(view, end - 1)
    pos = end
    table = []
    for _ in range(count):
        end = _need(view, pos, _SECTION.size)
        table.append(_SECTION.unpack_from(view, pos))
        pos = end
    end = _need(view, pos, 4)
    (header_crc,) = _U32.unpack_from(view, pos)
    if zlib.crc32(view[:pos]) != header_crc:
        raise BitstreamError("corrupted header (CRC mismatch)")
    pos = end
    if kind != KIND_IMAGE or flags & ~_KNOWN_FLAGS or channels not in (1, 3):
        raise BitstreamError("unsupported file kind, flags or channel count")
    if bool(flags & FLAG_GRAYSCALE) != (channels == 1):
        raise BitstreamError("the grayscale flag and the channel count disagree")
    if flags & _DOWNSCALE_BITS == _DOWNSCALE_BITS:
        raise BitstreamError("invalid downscale factor in the header")
    if not valid_size(width, height):
        raise BitstreamError(f"invalid picture size {width}x{height}")
    sections: dict[bytes, bytes] = {}
    for tag, length, crc in table:
        if tag in sections:
            raise BitstreamError(f"section {tag.decode('latin-1')!r} appears twice")
        end = _need(view, pos, length)
        payload = bytes(view[pos:end])
        if zlib.crc32(payload) != crc:
            raise BitstreamError(f"corrupted section {tag.decode('latin-1')!r} (CRC mismatch)")
        sections[tag] = payload
        pos = end
    if pos != len(view):
        raise BitstreamError(f"{len(view) - pos} unexpected bytes after the last section")
    header = Header(width, height, channels, quality, model_id, digest, flags, kind, version)
    return header, sections


def _need(view: memoryview, pos: int, size: int) -> int:
    """End offset of ``size`` bytes at ``pos``; raises if the file is shorter."""
    if pos + size > len(view):
        raise BitstreamError(f"truncated file ({len(view)} bytes, needs at least {pos + size})")
    return pos + size
