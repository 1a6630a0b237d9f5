"""The QP an HEVC picture was coded at, read from its slice headers (ITU-T H.265).

Told the QP, the artefact filter does better than blind, and much better on pictures whose
content looks more compressed than it is (smooth ones: blind, the estimate can be 10 QP too
high, and the filter then blurs detail away).  An HEIC file states its QP: each slice's is
``26 + init_qp_minus26`` (picture parameter set) ``+ slice_qp_delta`` (slice header).  To
reach ``slice_qp_delta`` the parser reads the sequence parameter set up to
``sample_adaptive_offset_enabled_flag``, the picture parameter set up to ``init_qp_minus26``
and the slice segment header of intra (IDR) slices.  Anything else (other slice kinds,
dependent slice segments, missing parameter sets) is skipped; with no readable slice, the
QP is unknown and callers fall back to blind mode.

With adaptive quantisation an encoder varies the QP inside the slice around the slice's; the
x265 settings of our HEIC anchor (``tune=psnr``) do not, but x265 realises a fractional QP
(its CRF) with per-block deltas above the slice's: HEIC quality 25 (QP 34.59) has slice QP
34.  The filter hardly tells the difference (kodim05 at quality 25: +0.650 dB told 34,
+0.645 told 34.59).
"""

from __future__ import annotations

from dataclasses import dataclass

from evaluation.isobmff import HeifParseError, primary_hevc_nals

SPS, PPS = 33, 34
IDR_W_RADL, IDR_N_LP = 19, 20
SLICE_I = 2
#: Bytes of a slice NAL unit read: its header ends well within them (a slice's data can be
#: megabytes, which the bit reader would copy for nothing).
SLICE_HEADER_BYTES = 256


class _Bits:
    """An RBSP (emulation-prevention bytes removed) read bit by bit, MSB first."""

    def __init__(self, nal: bytes) -> None:
        payload = bytearray()
        zeros = 0
        for byte in nal[2:]:  # after the two-byte NAL unit header
            if zeros >= 2 and byte == 3:
                zeros = 0
                continue
            zeros = zeros + 1 if byte == 0 else 0
            payload.append(byte)
        self.data, self.pos = bytes(payload), 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            if self.pos >= 8 * len(self.data):
                raise ValueError("RBSP ends early")
            value = (value << 1) | (self.data[self.pos >> 3] >> (7 - (self.pos & 7)) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def nal_type(nal: bytes) -> int:
    return nal[0] >> 1 & 63


@dataclass
class _Sps:
    chroma_array_type: int
    separate_planes: bool
    width: int
    height: int
    ctb_log2: int
    sao: bool


@dataclass
class _Pps:
    sps_id: int
    dependent_slices: bool
    output_flag: bool
    extra_bits: int
    init_qp: int


def _profile_tier_level(b: _Bits, sub_layers: int) -> None:
    b.u(88)  # general profile space, tier, profile, compatibility and constraint flags
    b.u(8)  # general level
    present = [(b.u(1), b.u(1)) for _ in range(sub_layers)]
    if sub_layers:
        b.u(2 * (8 - sub_layers))  # reserved
    for profile, level in present:
        b.u(88 if profile else 0)
        b.u(8 if level else 0)


def _scaling_list_data(b: _Bits) -> None:
    for size in range(4):
        for _ in range(0, 6, 3 if size == 3 else 1):
            if not b.u(1):  # scaling_list_pred_mode_flag
                b.ue()
                continue
            if size > 1:
                b.se()  # DC coefficient
            for _ in range(min(64, 1 << (4 + 2 * size))):
                b.se()


def _parse_sps(nal: bytes) -> tuple[int, _Sps]:
    b = _Bits(nal)
    b.u(4)  # video parameter set id
    sub_layers = b.u(3)
    b.u(1)
    _profile_tier_level(b, sub_layers)
    sps_id = b.ue()
    chroma = b.ue()
    separate = b.u(1) if chroma == 3 else 0
    width, height = b.ue(), b.ue()
    if b.u(1):  # conformance window
        for _ in range(4):
            b.ue()
    b.ue(), b.ue()  # bit depths
    b.ue()  # log2_max_pic_order_cnt_lsb_minus4
    for _ in range(0 if b.u(1) else sub_layers, sub_layers + 1):
        b.ue(), b.ue(), b.ue()  # decoded picture buffering
    min_cb = b.ue() + 3
    ctb_log2 = min_cb + b.ue()
    for _ in range(4):  # transform block sizes, hierarchy depths
        b.ue()
    if b.u(1) and b.u(1):  # scaling lists enabled, and given here
        _scaling_list_data(b)
    b.u(1)  # asymmetric motion partitions
    sao = bool(b.u(1))
    return sps_id, _Sps(0 if separate else chroma, bool(separate), width, height, ctb_log2, sao)


def _parse_pps(nal: bytes) -> tuple[int, _Pps]:
    b = _Bits(nal)
    pps_id, sps_id = b.ue(), b.ue()
    dependent, output_flag, extra_bits = bool(b.u(1)), bool(b.u(1)), b.u(3)
    b.u(1), b.u(1)  # sign data hiding, cabac init present
    b.ue(), b.ue()  # default reference index counts
    return pps_id, _Pps(sps_id, dependent, output_flag, extra_bits, 26 + b.se())


def _slice_qp(nal: bytes, sps: dict[int, _Sps], pps: dict[int, _Pps]) -> int | None:
    """The QP of an IDR slice segment, or None for a slice this parser skips."""
    kind = nal_type(nal)
    if kind not in (IDR_W_RADL, IDR_N_LP):
        return None
    b = _Bits(nal[:SLICE_HEADER_BYTES])
    first = b.u(1)
    b.u(1)  # no_output_of_prior_pics_flag (IDR pictures are IRAP)
    p = pps.get(b.ue())
    s = None if p is None else sps.get(p.sps_id)
    if p is None or s is None:
        return None
    if not first:
        if p.dependent_slices and b.u(1):
            return None  # a dependent slice segment: its QP is its first segment's
        ctb = 1 << s.ctb_log2
        ctbs = -(-s.width // ctb) * -(-s.height // ctb)
        b.u(max(0, (ctbs - 1).bit_length()))  # slice_segment_address
    b.u(p.extra_bits)
    if b.ue() != SLICE_I:
        return None
    if p.output_flag:
        b.u(1)
    if s.separate_planes:
        b.u(2)  # colour_plane_id
    if s.sao:
        b.u(1)
        if s.chroma_array_type:
            b.u(1)
    return p.init_qp + b.se()


def slice_qps(parameter_sets: list[bytes], nals: list[bytes]) -> list[int]:
    """The QP of every intra slice in ``nals`` (NAL units without start codes or length
    fields), with the parameter sets among ``parameter_sets`` and ``nals``."""
    sps, pps, qps = {}, {}, []
    for nal in [*parameter_sets, *nals]:
        if len(nal) < 3:
            continue
        try:
            if nal_type(nal) == SPS:
                key, value = _parse_sps(nal)
                sps[key] = value
            elif nal_type(nal) == PPS:
                key, value = _parse_pps(nal)
                pps[key] = value
            elif (qp := _slice_qp(nal, sps, pps)) is not None:
                qps.append(qp)
        except ValueError:
            continue  # a unit this parser cannot read tells nothing
    return qps


def heif_qp(data: bytes) -> float | None:
    """The mean slice QP of the primary image of HEIF file ``data`` (tiles included), or
    None where the file is not HEIF or no slice header is readable."""
    try:
        qps = slice_qps(*primary_hevc_nals(data))
    except HeifParseError:
        return None
    return sum(qps) / len(qps) if qps else None
