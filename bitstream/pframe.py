"""The payload of a P-frame record in an ``.lcv`` file (:mod:`bitstream.video`).

Layout::

    quality   u8        quality level the frame was coded at (1-based)
    lengths   one LEB128 varint per section: its length in 4-byte words (the range
              coder writes whole words)
    sections  the entropy-coded sections, in order, nothing after them

The section count is fixed by the inter model (motion z, motion y, residual z, residual
y).  No CRC: the record around the payload has one.  :func:`unpack_pframe` rejects
anything that does not match the layout with a :class:`BitstreamError`.
"""

from __future__ import annotations

from .container import BitstreamError


def pack_pframe(quality: int, sections: list[bytes]) -> bytes:
    """The payload of a P-frame coded at ``quality`` with ``sections``."""
    if not 1 <= quality <= 255:
        raise ValueError("quality out of range")
    out = bytearray([quality])
    for s in sections:
        if len(s) % 4:
            raise ValueError("sections are whole 4-byte words")
        words = len(s) // 4
        while True:
            byte, words = words & 0x7F, words >> 7
            out.append(byte | (0x80 if words else 0))
            if not words:
                break
    return bytes(out) + b"".join(sections)


def unpack_pframe(data: bytes, count: int) -> tuple[int, list[bytes]]:
    """Quality and the ``count`` sections of a payload."""
    if not data:
        raise BitstreamError("empty P-frame payload")
    pos, lengths = 1, []
    for _ in range(count):
        words, shift = 0, 0
        while True:
            if pos >= len(data) or shift > 28:
                raise BitstreamError("truncated or corrupted P-frame payload (lengths)")
            byte = data[pos]
            pos += 1
            words |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        lengths.append(4 * words)
    if pos + sum(lengths) != len(data):
        raise BitstreamError(
            f"truncated or corrupted P-frame payload ({len(data)} bytes,"
            f" sections say {pos + sum(lengths)})"
        )
    sections = []
    for length in lengths:
        sections.append(data[pos : pos + length])
        pos += length
    return data[0], sections
