"""Size of the HEVC bitstream inside a HEIF file, to report HEIC without its container.

A HEIF file (ISO/IEC 23008-12, an ISOBMFF file) keeps its coded image in ``mdat`` and
describes it in ``meta``: ``pitm`` names the primary item, ``iinf`` gives each item's type
(``hvc1`` for an HEVC image, ``grid`` for a tiled one whose tiles are the ``dimg``
references in ``iref``), ``iloc`` gives the byte extents of each item's data and ``ipma``
ties each item to properties in ``ipco``, one of which is the ``hvcC`` box holding the
parameter sets (VPS, SPS, PPS).

:func:`primary_hevc_nals` returns those NAL units themselves (for reading the slice QPs,
:mod:`postfilter.hevc`).

The payload counted here is what a raw HEVC stream of the primary image would hold: the
item's coded NAL units (the ``iloc`` extents, each NAL with its 4-byte length field) plus the
``hvcC`` parameter-set NAL units (with the same 4-byte length each).  Left out: ``ftyp``, the
box headers, item info, properties other than the parameter sets (size, colour, ``pixi``),
thumbnails and metadata.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

NAL_LENGTH_FIELD = 4


class HeifParseError(ValueError):
    """Not a HEIF file this parser understands."""


@dataclass
class _Meta:
    primary: int | None = None
    types: dict[int, bytes] = field(default_factory=dict)
    extents: dict[int, int] = field(default_factory=dict)  # item -> total extent bytes
    # item -> (file offset, length) of each extent; None where the data is not in the file
    # by plain offsets (construction method 1 or 2, or a data reference)
    locations: dict[int, list[tuple[int, int]] | None] = field(default_factory=dict)
    tiles: dict[int, list[int]] = field(default_factory=dict)  # grid item -> dimg items
    properties: list[tuple[bytes, bytes]] = field(default_factory=list)  # ipco, in order
    associations: dict[int, list[int]] = field(default_factory=dict)  # item -> 1-based ipco


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    """(type, body) of each box in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise HeifParseError(f"box {kind!r} at {pos} overruns the file")
        yield kind, data[pos + header : pos + size]
        pos += size


class _Reader:
    """Big-endian reads from a byte string."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def uint(self, nbytes: int) -> int:
        if self.pos + nbytes > len(self.data):
            raise HeifParseError("truncated box")
        value = int.from_bytes(self.data[self.pos : self.pos + nbytes], "big")
        self.pos += nbytes
        return value

    def full_box(self) -> tuple[int, int]:
        """Version and flags of a FullBox."""
        return self.uint(1), self.uint(3)


def _parse_iinf(body: bytes, meta: _Meta) -> None:
    r = _Reader(body)
    version, _ = r.full_box()
    r.uint(2 if version == 0 else 4)  # entry count
    for kind, infe in _boxes(body, r.pos):
        if kind != b"infe":
            continue
        e = _Reader(infe)
        v, _ = e.full_box()
        if v < 2:
            continue  # pre-HEIF item info, no item type
        item = e.uint(2 if v == 2 else 4)
        e.uint(2)  # protection index
        meta.types[item] = infe[e.pos : e.pos + 4]


def _parse_iloc(body: bytes, meta: _Meta) -> None:
    r = _Reader(body)
    version, _ = r.full_box()
    sizes = r.uint(1)
    offset_size, length_size = sizes >> 4, sizes & 15
    sizes = r.uint(1)
    base_offset_size, index_size = sizes >> 4, (sizes & 15 if version in (1, 2) else 0)
    for _ in range(r.uint(2 if version < 2 else 4)):
        item = r.uint(2 if version < 2 else 4)
        method = r.uint(2) & 15 if version in (1, 2) else 0  # construction method
        reference = r.uint(2)  # data reference index: 0, this file
        base = r.uint(base_offset_size)
        total, places = 0, []
        for _ in range(r.uint(2)):
            r.uint(index_size)
            offset, length = r.uint(offset_size), r.uint(length_size)
            total += length
            places.append((base + offset, length))
        meta.extents[item] = total
        meta.locations[item] = places if method == 0 and reference == 0 else None


def _parse_iref(body: bytes, meta: _Meta) -> None:
    r = _Reader(body)
    version, _ = r.full_box()
    id_size = 2 if version == 0 else 4
    for kind, ref in _boxes(body, r.pos):
        e = _Reader(ref)
        source = e.uint(id_size)
        targets = [e.uint(id_size) for _ in range(e.uint(2))]
        if kind == b"dimg":
            meta.tiles[source] = targets


def _parse_ipma(body: bytes, meta: _Meta) -> None:
    r = _Reader(body)
    version, flags = r.full_box()
    for _ in range(r.uint(4)):
        item = r.uint(2 if version < 1 else 4)
        index_size = 2 if flags & 1 else 1
        mask = 0x7FFF if flags & 1 else 0x7F
        meta.associations[item] = [r.uint(index_size) & mask for _ in range(r.uint(1))]


def _parse_meta(body: bytes) -> _Meta:
    meta = _Meta()
    for kind, child in _boxes(body, 4):  # meta is a FullBox
        if kind == b"pitm":
            r = _Reader(child)
            version, _ = r.full_box()
            meta.primary = r.uint(2 if version == 0 else 4)
        elif kind == b"iinf":
            _parse_iinf(child, meta)
        elif kind == b"iloc":
            _parse_iloc(child, meta)
        elif kind == b"iref":
            _parse_iref(child, meta)
        elif kind == b"iprp":
            for prop_kind, prop in _boxes(child):
                if prop_kind == b"ipco":
                    meta.properties = list(_boxes(prop))
                elif prop_kind == b"ipma":
                    _parse_ipma(prop, meta)
    return meta


def _parameter_sets(hvcc: bytes) -> list[bytes]:
    """The NAL units of an HEVCDecoderConfigurationRecord (VPS, SPS, PPS, SEI)."""
    r = _Reader(hvcc)
    r.pos = 22  # fixed-size part of the record
    nals = []
    for _ in range(r.uint(1)):
        r.uint(1)  # array completeness and NAL unit type
        for _ in range(r.uint(2)):
            n = r.uint(2)
            nals.append(hvcc[r.pos : r.pos + n])
            r.pos += n
    if r.pos > len(hvcc):
        raise HeifParseError("truncated hvcC box")
    return nals


def _primary_items(data: bytes) -> tuple[_Meta, list[int], list[bytes]]:
    """The parsed ``meta`` of HEIF file ``data``, the HEVC items of its primary image (the
    item, or the tiles of a grid) and their ``hvcC`` boxes."""
    metas = [body for kind, body in _boxes(data) if kind == b"meta"]
    if not metas:
        raise HeifParseError("no meta box: not a HEIF file")
    meta = _parse_meta(metas[0])
    if meta.primary is None:
        raise HeifParseError("no primary item")
    kind = meta.types.get(meta.primary)
    if kind == b"hvc1":
        items = [meta.primary]
    elif kind == b"grid":
        items = meta.tiles.get(meta.primary, [])
    else:
        raise HeifParseError(f"primary item is {kind!r}, not an HEVC image")
    if not items or any(meta.types.get(i) != b"hvc1" or i not in meta.extents for i in items):
        raise HeifParseError("HEVC items or their locations are missing")
    hvcc = sorted(
        {
            index
            for i in items
            for index in meta.associations.get(i, [])
            if 0 < index <= len(meta.properties) and meta.properties[index - 1][0] == b"hvcC"
        }
    )
    if not hvcc:
        raise HeifParseError("no hvcC box for the primary image")
    return meta, items, [meta.properties[i - 1][1] for i in hvcc]


def hevc_payload_size(data: bytes) -> int:
    """Bytes of the HEVC bitstream of the primary image of HEIF file ``data`` (see module)."""
    meta, items, hvccs = _primary_items(data)
    sets = sum(NAL_LENGTH_FIELD + len(nal) for h in hvccs for nal in _parameter_sets(h))
    return sum(meta.extents[i] for i in items) + sets


def primary_hevc_nals(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """The parameter-set NAL units (from ``hvcC``) and the coded NAL units (each item's
    data, NAL units with 4-byte length fields) of the primary image of HEIF file ``data``."""
    meta, items, hvccs = _primary_items(data)
    coded = []
    for item in items:
        places = meta.locations.get(item)
        if places is None:
            raise HeifParseError(f"item {item} is not stored at plain file offsets")
        stream = b"".join(data[o : o + n] for o, n in places)
        if sum(n for _, n in places) != len(stream):
            raise HeifParseError(f"item {item} runs past the end of the file")
        pos = 0
        while pos + NAL_LENGTH_FIELD <= len(stream):
            n = int.from_bytes(stream[pos : pos + NAL_LENGTH_FIELD], "big")
            pos += NAL_LENGTH_FIELD
            if pos + n > len(stream):
                raise HeifParseError("truncated NAL unit")
            coded.append(stream[pos : pos + n])
            pos += n
    return [nal for h in hvccs for nal in _parameter_sets(h)], coded
