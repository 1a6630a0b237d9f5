"""The video RD suite: our codec against x265 and x264 on ``.y4m`` sequences.

Per sequence (its first ``frames`` frames), codec and quality it records:

- bpp: coded bits / (width * height * frames); ours from the ``.lcv`` file size (header
  included), the anchors from their elementary-stream bytes (Annex B, no container);
- PSNR on RGB, PSNR on YUV 4:2:0 as (6 Y + U + V) / 8, and MS-SSIM on RGB: each the mean
  over frames of the per-frame value, as the JVET tools report PSNR.

The source's YUV 4:2:0 planes are the YUV reference; its RGB reference and every decoded
RGB frame are converted with :mod:`codec.video_io` in the source's range, and our decoded
RGB goes back to YUV 4:2:0 the same way, so every codec is measured alike.

Anchors run in this process through PyAV: libx265 and libx264 at presets medium and
veryslow, fixed QP (22..47), no B-frames, intra period ``gop`` (scene cuts off), one thread.
``ours`` is our codec with its P-frame model and the same intra period, ``ours-intra`` our
codec coding every frame as an I-frame.  BD-rates are per sequence against ``x265-medium``
and their mean over sequences, and (``bd_vs_intra``, what inter coding buys) of ``ours``
against ``ours-intra``.  Results are cached per point, so a re-run recomputes nothing it has.

    python -m evaluation.video --data ../shared/data/video/test -o results/video
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bitstream.video import DEFAULT_GOP, read_frames, read_header

from . import metrics
from .cache import ResultCache, cache_key, report_results
from .codecs import expand_names
from .curves import Curve
from .errors import EvaluationError
from .report import compare, format_bd_table, run_totals, write_csv, write_json
from .runner import Qualities, codec_qualities, parse_qualities
from .video_options import add_arguments

DEFAULT_REF = "x265-medium"
RD_FORMAT = "lcodec-rd-video-1"  # of rd.json
QPS = (22, 27, 32, 37, 42, 47)
CSV_COLUMNS = (
    "sequence",
    "codec",
    "quality",
    "bpp",
    "psnr",
    "psnr_yuv",
    "psnr_y",
    "psnr_u",
    "psnr_v",
    "ms_ssim",
    "ms_ssim_db",
    "frames",
    "encode_s",
    "decode_s",
)
YUV_BD = (("bd_rate_psnr_yuv", "BD-rate PSNR-YUV"),)


@dataclass
class VideoSequence:
    """The first frames of a ``.y4m`` file: source YUV 4:2:0 frames, their planes and RGB."""

    name: str
    width: int
    height: int
    fps: Fraction
    full_range: bool
    yuv: list  # av.VideoFrame, yuv420p
    planes: list[list[np.ndarray]]
    rgb: list[np.ndarray]
    digest: str  # SHA-256 of the file

    @property
    def info(self) -> dict:
        return {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "frames": len(self.rgb),
            "fps": str(self.fps),
            "full_range": self.full_range,
            "sha256": self.digest,
        }


def load_sequence(path: Path, frames: int | None) -> VideoSequence:
    """Read up to ``frames`` frames (all if None) of a ``.y4m`` file."""
    import av

    from codec.video_io import planes, to_rgb

    try:
        with av.open(str(path)) as f:
            stream = f.streams.video[0]
            fps = Fraction(stream.average_rate or stream.guessed_rate)
            yuv = []
            for frame in f.decode(stream):
                if frames is not None and len(yuv) >= frames:
                    break
                yuv.append(frame if frame.format.name == "yuv420p" else _to_420(frame))
    except (av.FFmpegError, IndexError, TypeError) as e:
        raise EvaluationError(f"cannot read video {path}: {e}") from None
    if not yuv:
        raise EvaluationError(f"no frames in {path}")
    full = yuv[0].color_range == av.video.reformatter.ColorRange.JPEG
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    w, h = yuv[0].width, yuv[0].height
    rgb = [to_rgb(f, full) for f in yuv]
    return VideoSequence(path.stem, w, h, fps, full, yuv, [planes(f) for f in yuv], rgb, digest)


def _to_420(frame):
    return frame.reformat(format="yuv420p", dst_color_range=frame.color_range)


@dataclass
class Coded:
    """A coded sequence: its bytes, the coding times and the decoded frames as
    (RGB array, YUV 4:2:0 planes) pairs."""

    bytes: int
    encode_s: float
    decode_s: float
    frames: list[tuple[np.ndarray, list[np.ndarray]]]
    types: str = ""  # the frame types coded ("IPPI..."), where the codec says


class VideoCodecUnderTest:
    """A codec of the suite: codes a whole sequence at one quality and decodes it."""

    name = ""
    qualities: tuple[int, ...] = ()
    quality_range: tuple[int, int] = (0, 51)  # what the codec takes: the QPs of x264/x265

    def settings(self, gop: int) -> str:
        """Library versions and options (part of the cache key)."""
        raise NotImplementedError

    def code(self, seq: VideoSequence, quality: int, gop: int) -> Coded:
        """Code ``seq`` at ``quality`` with intra period ``gop`` and decode it."""
        raise NotImplementedError


class Anchor(VideoCodecUnderTest):
    """libx265 or libx264 through PyAV: fixed QP, no B-frames, fixed intra period."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.library, self.preset = name.split("-")
        self.decoder = {"x265": "hevc", "x264": "h264"}[self.library]
        self.qualities = QPS

    def _params(self, gop: int) -> str:
        """Encoder parameters other than the QP."""
        if self.library == "x265":
            return (
                f"keyint={gop or -1}:min-keyint=1:scenecut=0:bframes=0"
                ":pools=1:frame-threads=1:log-level=error"
            )
        return f"keyint={gop or 'infinite'}:min-keyint=1:scenecut=0:bframes=0:threads=1"

    def settings(self, gop: int) -> str:
        import av

        return f"pyav-{av.__version__} lib{self.library} preset={self.preset} {self._params(gop)}"

    def code(self, seq: VideoSequence, quality: int, gop: int) -> Coded:
        import av
        from av.video.frame import PictureType

        from codec.video_io import planes, to_rgb

        if seq.width % 2 or seq.height % 2:
            raise EvaluationError(f"{self.name} needs even frame sizes ({seq.name})")
        t0 = time.perf_counter()
        enc = av.CodecContext.create(f"lib{self.library}", "w")
        enc.width, enc.height, enc.pix_fmt = seq.width, seq.height, "yuv420p"
        enc.time_base, enc.framerate, enc.thread_count = 1 / seq.fps, seq.fps, 1
        params = f"qp={quality}:{self._params(gop)}"
        enc.options = {"preset": self.preset, f"{self.library}-params": params}
        packets = []
        for i, frame in enumerate(seq.yuv):
            frame.pts, frame.pict_type = i, PictureType.NONE  # else x264 keeps the source's I
            packets += enc.encode(frame)
        packets += enc.encode(None)
        t1 = time.perf_counter()
        dec = av.CodecContext.create(self.decoder, "r")
        decoded = [f for p in [*packets, None] for f in dec.decode(p)]
        t2 = time.perf_counter()
        out = [(to_rgb(f, seq.full_range), planes(f)) for f in decoded]
        return Coded(sum(p.size for p in packets), t1 - t0, t2 - t1, out)


class Ours(VideoCodecUnderTest):
    """Our video codec (:class:`codec.video.VideoCodec`): ``ours`` with its P-frame model at
    the suite's intra period, ``ours-intra`` with every frame an I-frame."""

    def __init__(self, name: str, model=None, inter_model=None) -> None:
        """``model``: a loaded image ``Codec``, a weights file, or None (the shipped one);
        ``inter_model``: P-frame weights for ``ours`` (default: the shipped ones)."""
        from codec import Codec
        from codec.inter_coder import InterCoder
        from codec.inter_weights import DEFAULT_INTER_WEIGHTS
        from codec.video import VideoCodec

        self.name = name
        try:
            image = model if isinstance(model, Codec) else Codec(model)
            inter = None
            if name == "ours":
                path = inter_model or DEFAULT_INTER_WEIGHTS
                if not Path(path).is_file():
                    raise FileNotFoundError(f"no P-frame weights at {path}")
                inter = InterCoder(path)
            self.codec = VideoCodec(image, inter)
        except Exception as e:  # any failure to load weights is a user-facing problem
            raise EvaluationError(f"cannot load our model: {e}") from None
        self.qualities = tuple(range(1, self.codec.qualities + 1))
        self.quality_range = (1, self.codec.qualities)

    def settings(self, gop: int) -> str:
        image, inter = self.codec.image, self.codec.inter
        if inter is None:
            return f"{image.model_id} {image.digest.hex()} all-intra"
        share, jump = self.codec.intra_trial
        choice = f" I where cheaper, tried at {share:g}/{jump:g}" if self.codec.choose_intra else ""
        return (
            f"{image.model_id} {image.digest.hex()} {inter.model_id} {inter.digest.hex()}{choice}"
        )

    def code(self, seq: VideoSequence, quality: int, gop: int) -> Coded:
        from codec.video_io import planes, to_yuv420

        buf = io.BytesIO()
        t0 = time.perf_counter()
        coded = self.codec.encode_frames(seq.rgb, buf, seq.fps, quality, gop)
        types = "".join(frame.type for frame in coded)
        t1 = time.perf_counter()
        buf.seek(0)
        header = read_header(buf)
        rgb = list(self.codec.decode_frames(header, read_frames(buf, header)))
        t2 = time.perf_counter()
        out = [(x, planes(to_yuv420(x, seq.full_range))) for x in rgb]
        return Coded(len(buf.getvalue()), t1 - t0, t2 - t1, out, types)


OURS_NAMES = ("ours", "ours-intra")


ANCHOR_NAMES = ("x265-medium", "x265-veryslow", "x264-medium", "x264-veryslow")
EXTRA_NAMES = ("x264-ultrafast", "x265-ultrafast")  # quick runs and tests only
GROUPS = {"all": [*OURS_NAMES, *ANCHOR_NAMES], "anchors": list(ANCHOR_NAMES)}


def parse_video_codecs(spec: str | Sequence[str]) -> list[str]:
    """Codec names of a comma list (``all``, ``anchors`` expanded)."""
    known = [*OURS_NAMES, *ANCHOR_NAMES, *EXTRA_NAMES]
    return expand_names(spec, GROUPS, known, kind="video codec")


def measure(seq: VideoSequence, decoded: list) -> dict:
    """Mean per-frame PSNR (RGB, Y, U, V, YUV 6:1:1) and MS-SSIM of decoded frames."""
    if len(decoded) != len(seq.rgb):
        raise EvaluationError(f"decoded {len(decoded)} frames of {len(seq.rgb)}")
    rows = []
    for src_rgb, src_planes, (rgb, yuv) in zip(seq.rgb, seq.planes, decoded, strict=True):
        y, u, v = (metrics.plane_psnr(a, b) for a, b in zip(src_planes, yuv, strict=True))
        rows.append((metrics.psnr(src_rgb, rgb), y, u, v, metrics.ms_ssim(src_rgb, rgb)))
    cols = list(zip(*rows, strict=True))
    ssim = None if any(s is None for s in cols[4]) else math.fsum(cols[4]) / len(rows)
    y, u, v = (math.fsum(c) / len(rows) for c in cols[1:4])
    return {
        "psnr": math.fsum(cols[0]) / len(rows),
        "psnr_yuv": math.fsum((6 * a + b + c) / 8 for a, b, c in zip(*cols[1:4], strict=True))
        / len(rows),
        "psnr_y": y,
        "psnr_u": u,
        "psnr_v": v,
        "ms_ssim": ssim,
        "ms_ssim_db": metrics.ms_ssim_db(ssim),
    }


def _evaluate(codec: VideoCodecUnderTest, seq: VideoSequence, quality: int, gop: int) -> dict:
    try:
        coded = codec.code(seq, quality, gop)
        result = measure(seq, coded.frames)
    except EvaluationError:
        raise
    except Exception as e:  # a codec failure names the case; finished results stay cached
        raise EvaluationError(f"{codec.name} quality {quality} on {seq.name}: {e}") from None
    frames = len(seq.rgb)
    return {
        "bytes": coded.bytes,
        "bpp": 8.0 * coded.bytes / (seq.width * seq.height * frames),
        **result,
        "frames": frames,
        "encode_s": coded.encode_s,
        "decode_s": coded.decode_s,
    }


def _curves(records: list[dict], metric: str) -> dict[str, Curve]:
    """Curves by codec of one sequence's records, quality ``metric`` as the PSNR axis."""
    curves: dict[str, Curve] = {}
    for r in sorted(records, key=lambda r: r["bpp"]):
        curves.setdefault(r["codec"], Curve(r["codec"])).add(r["bpp"], r[metric], r["ms_ssim"])
    return curves


def bd_table(records: list[dict], sequences: list[str], ref: str) -> list[dict]:
    """BD rows of every codec against ``ref``, per sequence and averaged over sequences."""
    rows = []
    for name in sequences:
        own = [r for r in records if r["sequence"] == name]
        rgb, yuv = _curves(own, "psnr"), _curves(own, "psnr_yuv")
        if ref not in rgb:
            continue
        for codec in rgb:
            if codec == ref:
                continue
            row = {"codec": codec, "anchor": f"{ref} on {name}", "sequence": name}
            row |= compare(rgb[codec], rgb[ref])
            row["bd_rate_psnr_yuv"] = compare(yuv[codec], yuv[ref])["bd_rate_psnr"]
            rows.append(row)
    keys = ("bd_rate_psnr", "bd_psnr", "bd_rate_ms_ssim", "bd_rate_psnr_yuv")
    for codec in dict.fromkeys(r["codec"] for r in rows):
        own = [r for r in rows if r["codec"] == codec]
        mean = {k: _mean([r[k] for r in own]) for k in keys}
        rows.append({"codec": codec, "anchor": f"{ref} (mean of {len(own)})", **mean})
    return rows


def _mean(values: list[float | None]) -> float | None:
    return None if not values or None in values else math.fsum(values) / len(values)


def run_video_rd(
    data: Path | str,
    out_dir: Path | str,
    codecs: str | Sequence[str] = "all",
    qualities: Qualities = None,
    frames: int | None = None,
    gop: int = DEFAULT_GOP,
    ref_codec: str = DEFAULT_REF,
    cache: bool = True,
    progress: bool = True,
    model=None,
    inter_model=None,
) -> dict:
    """Run the video suite on the ``.y4m`` files in ``data``; write ``rd.json``, ``rd.csv``
    and ``rd_<sequence>.png``/``.svg`` into ``out_dir`` and return the results.

    ``frames``: first frames of each sequence (default: all).  ``gop``: the anchors' intra
    period, ours included (0: one I-frame).  ``model``: our image ``Codec`` or its weights
    file; ``inter_model``: our P-frame weights (default: the shipped ones).
    """
    started = time.perf_counter()
    data, out_dir = Path(data), Path(out_dir)
    paths = sorted(data.glob("*.y4m")) if data.is_dir() else []
    if not paths:
        raise EvaluationError(f"no .y4m sequences in {data}")
    if frames is not None and frames < 1:
        raise EvaluationError("--frames must be at least 1")
    if gop < 0:
        raise EvaluationError("--gop must be 0 (one I-frame) or a positive intra period")
    names = parse_video_codecs(codecs)
    if ref_codec not in names:
        raise EvaluationError(f"reference codec '{ref_codec}' is not among the codecs run")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EvaluationError(f"cannot create {out_dir}: {e}") from None
    store = ResultCache(out_dir / "rd.cache.jsonl" if cache else None)
    if cache:  # the results this run will overwrite, e.g. the committed ones
        store.adopt(
            report_results(out_dir / "rd.json", RD_FORMAT, "sequences", "sequence", _identity)
        )
    instances = [Ours(n, model, inter_model) if n in OURS_NAMES else Anchor(n) for n in names]
    plan = [(c, codec_qualities(c, qualities)) for c in instances]
    sequences = [load_sequence(p, frames) for p in paths]
    records, evaluated = _collect(plan, sequences, gop, store, progress)
    seq_names = [s.name for s in sequences]
    result = {
        "format": RD_FORMAT,
        "data": str(data),
        "gop": gop,
        "sequences": [s.info for s in sequences],
        "codecs": {c.name: {"settings": c.settings(gop), "qualities": qs} for c, qs in plan},
        "reference": ref_codec,
        "bd": bd_table(records, seq_names, ref_codec),
        "bd_vs_intra": bd_table(
            [r for r in records if r["codec"] in OURS_NAMES], seq_names, "ours-intra"
        ),
        **run_totals(records, evaluated, started),
    }
    from .plot import plot_rd

    for name in seq_names:
        curves = _curves([r for r in records if r["sequence"] == name], "psnr")
        plot_rd(curves, {}, out_dir / f"rd_{name}.png", title=name)
    write_csv(out_dir / "rd.csv", records, CSV_COLUMNS)
    write_json(out_dir / "rd.json", result)
    return result


def _collect(
    plan: list, sequences: list[VideoSequence], gop: int, store: ResultCache, progress: bool
) -> tuple[list[dict], int]:
    """Records of every (codec, quality, sequence), from the cache where it has them."""
    records, evaluated = [], 0
    total = sum(len(qs) for _, qs in plan) * len(sequences)
    with tqdm(total=total, desc="rd video", disable=not progress, file=sys.stderr) as bar:
        for codec, qs in plan:
            settings = codec.settings(gop)
            for q in qs:
                bar.set_postfix_str(f"{codec.name} q={q}")
                for seq in sequences:
                    key = cache_key(codec.name, settings, q, seq.name, _identity(seq.info))
                    result = store.get(key)
                    if result is None:
                        result = _evaluate(codec, seq, q, gop)
                        evaluated += 1
                        store.put(key, result)
                    records.append(
                        {"sequence": seq.name, "codec": codec.name, "quality": q, **result}
                    )
                    bar.update()
    return records, evaluated


def _identity(info: dict) -> str:
    """A sequence's digest in cache keys, from its :attr:`VideoSequence.info`: the file's
    SHA-256 and the frames coded."""
    return f"{info['sha256']} frames={info['frames']}"


def points_table(records: list[dict]) -> Iterator[str]:
    """Text lines: per sequence, codec and quality, bpp, PSNR (RGB, YUV) and MS-SSIM (dB)."""
    yield f"{'sequence':<28} {'codec':<15} {'q':>3} {'bpp':>8} {'RGB':>7} {'YUV':>7} {'MS-SSIM':>8}"
    for r in sorted(records, key=lambda r: (r["sequence"], r["codec"], r["quality"])):
        ssim = "n/a" if r["ms_ssim_db"] is None else f"{r['ms_ssim_db']:.2f}"
        yield (
            f"{r['sequence']:<28} {r['codec']:<15} {r['quality']:>3} {r['bpp']:>8.4f}"
            f" {r['psnr']:>7.2f} {r['psnr_yuv']:>7.2f} {ssim:>8}"
        )


def report(result: dict, out_dir: Path | str) -> str:
    """The text printed after a run: points, BD-rates and where the files went."""
    lines = [*points_table(result["records"]), ""]
    lines.append(format_bd_table(result["bd"], YUV_BD))
    if result["bd_vs_intra"]:
        lines.append(format_bd_table(result["bd_vs_intra"], YUV_BD))
    lines.append(
        f"{result['evaluated']} coded, {result['reused']} from cache,"
        f" {result['elapsed_s']:.0f} s; wrote {Path(out_dir) / 'rd.json'}"
    )
    return "\n".join(lines)


def run_args(args: argparse.Namespace, data: Path | str) -> None:
    """Run the suite on ``data`` as parsed command-line ``args`` ask (of :func:`main` or
    ``lcodec rd --video``) and print the report unless ``--quiet``."""
    result = run_video_rd(
        data,
        args.output,
        args.codecs,
        parse_qualities(args.qualities, parse_video_codecs),
        args.frames,
        args.gop,
        args.ref_codec or DEFAULT_REF,
        cache=not args.no_cache,
        progress=not args.quiet,
        model=args.model,
        inter_model=args.inter_model,
    )
    if not args.quiet:
        print(report(result, args.output))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evaluation.video", description=__doc__)
    p.add_argument("--data", type=Path, required=True, help="folder of .y4m sequences")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    p.add_argument("--codecs", default="all", help="comma list (default: %(default)s)")
    p.add_argument("-q", "--qualities", action="append", metavar="LIST")
    p.add_argument("--ref-codec", default=DEFAULT_REF, help="(default: %(default)s)")
    p.add_argument("--model", type=Path, help="our image model (default: the shipped one)")
    p.add_argument("--no-cache", action="store_true")
    p.add_argument("--quiet", action="store_true")
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        run_args(args, args.data)
    except EvaluationError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
