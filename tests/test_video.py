"""Video: the ``.lcv`` container, the Python API, the CLI and the ``rd --video`` suite.

Clips are synthetic, written with PyAV; the tiny random model codes them.  Until a P-frame
model exists every frame is an I-frame, which the tests check rather than hide.
"""

from __future__ import annotations

import io
import json
import zlib
from dataclasses import replace
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from bitstream import BitstreamError
from bitstream.video import (
    FRAME_I,
    FRAME_P,
    FrameDamaged,
    VideoHeader,
    VideoWriter,
    read_frames,
    read_header,
)
from cli.main import main
from codec.video import (
    VideoCodec,
    decode_video,
    encode_video,
    iter_frames,
    planned_type,
    scan_video,
)
from codec.video_io import ClipReader, add_rgb_change, planes, to_rgb, to_yuv420

from .conftest import smooth_image

FPS = Fraction(30000, 1001)


def frames_of(n: int, h: int, w: int) -> list[np.ndarray]:
    """``n`` frames of a smooth picture moving right by 2 pixels a frame."""
    base = smooth_image(h, w + 2 * n, seed=1)
    return [np.ascontiguousarray(base[:, 2 * i : 2 * i + w]) for i in range(n)]


def write_clip(path, frames: list[np.ndarray], fps: Fraction = FPS) -> None:
    """``.y4m`` (yuv420p) or ``.mkv`` (FFV1 RGB) clip of RGB ``frames``."""
    codec, pix_fmt = ("ffv1", "bgr0") if path.suffix == ".mkv" else ("rawvideo", "yuv420p")
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=fps)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix_fmt
        for rgb in frames:
            out.mux(s.encode(av.VideoFrame.from_ndarray(rgb, "rgb24").reformat(format=pix_fmt)))
        out.mux(s.encode(None))


def read_clip(path) -> tuple[list[np.ndarray], Fraction]:
    with ClipReader(path) as clip:
        return list(clip), clip.fps


@pytest.fixture(scope="module")
def video_codec(tiny_codec) -> VideoCodec:
    return VideoCodec(tiny_codec)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "clip.mkv"
    write_clip(path, frames_of(4, 32, 48))
    return path


@pytest.fixture(scope="module")
def lcv(tmp_path_factory, clip, video_codec):
    path = tmp_path_factory.mktemp("lcv") / "clip.lcv"
    encode_video(clip, path, quality=3, gop=2, codec=video_codec)
    return path


# -- container ---------------------------------------------------------------------------
HEADER = VideoHeader(48, 32, FPS, 2, "model", bytes(range(8)), "inter", bytes(8))
PAYLOADS = [b"first I", b"", b"third frame", b"4"]


def container_bytes() -> tuple[bytes, list[int]]:
    """A 4-frame file of made-up payloads and the offsets where each record starts."""
    buf = io.BytesIO()
    starts = []
    with VideoWriter(buf, HEADER) as w:
        for i, payload in enumerate(PAYLOADS):
            starts.append(buf.tell())
            w.write(FRAME_I if i == 0 else FRAME_P, payload)
    return buf.getvalue(), starts


def records(data: bytes) -> tuple[list, Exception | None]:
    """Records read from ``data`` before the first error, and that error."""
    f = io.BytesIO(data)
    got = []
    try:
        header = read_header(f)
        got.extend(read_frames(f, header))
    except BitstreamError as e:
        return got, e
    return got, None


def test_container_round_trip() -> None:
    data, _ = container_bytes()
    got, error = records(data)
    assert error is None
    header = read_header(io.BytesIO(data))
    assert header == replace(HEADER, frames=4)
    assert [r.payload for r in got] == PAYLOADS
    assert [r.type_name for r in got] == ["I", "P", "P", "P"]
    assert sum(r.size for r in got) + len(header.pack()) == len(data)


def test_truncation_names_the_first_damaged_frame() -> None:
    data, starts = container_bytes()
    for cut in range(len(data)):
        got, error = records(data[:cut])
        if cut < starts[0]:  # inside the header: nothing to read
            assert type(error) is BitstreamError and not got
            continue
        damaged = max(i for i, s in enumerate(starts) if s <= cut)
        assert isinstance(error, FrameDamaged) and error.frame == damaged, cut
        assert [r.payload for r in got] == PAYLOADS[:damaged]
        assert f"frame {damaged}" in str(error)


def test_every_byte_flip_is_detected() -> None:
    data, starts = container_bytes()
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= 0x40
        got, error = records(bytes(bad))
        if pos < starts[0]:
            assert type(error) is BitstreamError, pos
        else:
            damaged = max(i for i, s in enumerate(starts) if s <= pos)
            assert isinstance(error, FrameDamaged) and error.frame == damaged, pos
            assert len(got) == damaged


def test_bad_headers_and_trailing_bytes() -> None:
    data, _ = container_bytes()
    for bad, message in (
        (b"\x89LCF" + data[4:], "magic"),
        (data[:4] + b"\x09" + data[5:], "CRC"),
        (HEADER.pack(), "unfinished"),  # frame count never patched
        (b"", "truncated"),
    ):
        with pytest.raises(BitstreamError, match=message):
            read_header(io.BytesIO(bad))
    _, error = records(data + b"\0")
    assert isinstance(error, FrameDamaged) and error.frame == 4


def test_writer_rules() -> None:
    with pytest.raises(ValueError):
        VideoWriter(io.BytesIO(), HEADER).write(FRAME_P, b"x")  # a video starts with an I-frame
    intra_only = VideoWriter(io.BytesIO(), replace(HEADER, inter_id=""))
    intra_only.write(FRAME_I, b"x")
    with pytest.raises(ValueError):
        intra_only.write(FRAME_P, b"x")  # P-frames need a P-frame model in the header
    with pytest.raises(ValueError):
        VideoWriter(io.BytesIO(), HEADER).close()  # and has at least one frame
    with pytest.raises(ValueError):
        VideoHeader(48, 32, Fraction(0), 2, "m", bytes(8)).pack()


def test_planned_gop_structure() -> None:
    assert [planned_type(i, 3) for i in range(7)] == [0, 1, 1, 0, 1, 1, 0]
    assert [planned_type(i, 0) for i in range(4)] == [0, 1, 1, 1]
    assert [planned_type(i, 1) for i in range(3)] == [0, 0, 0]


# -- Python API --------------------------------------------------------------------------
def test_api_round_trip(tmp_path, clip, lcv, video_codec) -> None:
    source, _ = read_clip(clip)
    summary = scan_video(lcv)
    assert summary.damage is None and summary.bytes == lcv.stat().st_size
    h = summary.header
    assert (h.width, h.height, h.frames, h.fps, h.gop) == (48, 32, 4, FPS, 2)
    assert summary.types == {"I": 4, "P": 0}  # no P-frame model yet: honest all-intra
    assert [f.quality for f in summary.frames] == [3] * 4
    decoded = list(iter_frames(lcv, video_codec))
    assert len(decoded) == 4 and decoded[0].shape == source[0].shape
    out = tmp_path / "out.mkv"
    decode_video(lcv, out, codec=video_codec)
    frames, fps = read_clip(out)
    assert fps == FPS and all((a == b).all() for a, b in zip(frames, decoded, strict=True))
    again = tmp_path / "again.lcv"
    encode_video(clip, again, quality=3, gop=2, codec=video_codec)
    assert again.read_bytes() == lcv.read_bytes()  # deterministic


@pytest.mark.parametrize(("n", "h", "w"), [(3, 17, 33), (1, 32, 48)])
def test_odd_sizes_and_one_frame(tmp_path, video_codec, n, h, w) -> None:
    src, dst, out = tmp_path / "in.y4m", tmp_path / "a.lcv", tmp_path / "out.y4m"
    write_clip(src, frames_of(n, h, w), Fraction(25))
    summary = encode_video(src, dst, quality=2, gop=0, codec=video_codec)
    assert len(summary.frames) == n and summary.header.gop == 0
    decode_video(dst, out, codec=video_codec)
    frames, fps = read_clip(out)
    assert len(frames) == n and frames[0].shape == (h, w, 3) and fps == 25


def test_raw_yuv_input(tmp_path, video_codec) -> None:
    y4m, raw, dst = tmp_path / "in.y4m", tmp_path / "in.yuv", tmp_path / "a.lcv"
    write_clip(y4m, frames_of(2, 17, 33))
    with av.open(str(y4m)) as f:
        raw.write_bytes(b"".join(bytes(p) for frame in f.decode(video=0) for p in frame.planes))
    summary = encode_video(raw, dst, size=(33, 17), fps=FPS, codec=video_codec)
    assert len(summary.frames) == 2 and summary.header.fps == FPS
    with pytest.raises(ValueError, match="--size"):
        encode_video(raw, dst, codec=video_codec)
    raw.write_bytes(raw.read_bytes()[:-1])
    with pytest.raises(ValueError, match="whole number"):
        encode_video(raw, dst, size=(33, 17), fps=FPS, codec=video_codec)


@pytest.mark.parametrize("size", [(32, 48), (17, 33)])
def test_y4m_cut_inside_a_frame_is_an_error(tmp_path, size) -> None:
    """FFmpeg drops a last frame cut short without a word; the reader does not."""
    y4m = tmp_path / "in.y4m"
    write_clip(y4m, frames_of(3, *size))
    assert len(read_clip(y4m)[0]) == 3
    whole = y4m.read_bytes()
    for cut in (1, 100, len(whole) // 3):
        y4m.write_bytes(whole[:-cut])
        with pytest.raises(ValueError, match="cut short after frame"):
            read_clip(y4m)


class LosslessResidual:
    """A stand-in P-frame coder for the seam: the zlib-coded difference to the reference."""

    model_id, digest, qualities = "residual-test", bytes(range(8, 16)), 6

    def encode(self, frame, reference, quality):
        diff = frame.astype(np.int16) - reference
        return zlib.compress(diff.tobytes()), frame

    def decode(self, payload, reference):
        diff = np.frombuffer(zlib.decompress(payload), np.int16).reshape(reference.shape)
        return (reference + diff).astype(np.uint8)


def test_reader_turns_frames_upright_and_names_audio_left_out(tmp_path) -> None:
    """A phone's portrait clip: landscape frames, a 90-degree display matrix, and sound."""
    path, frames = tmp_path / "phone.mkv", frames_of(2, 32, 48)
    with av.open(str(path), "w") as out:
        s = out.add_stream("ffv1", rate=FPS)
        s.height, s.width, s.pix_fmt = 32, 48, "bgr0"
        s.set_display_rotation(-90)  # clockwise: the phone was held upright
        sound = out.add_stream("pcm_s16le", rate=8000, layout="mono")
        for rgb in frames:
            out.mux(s.encode(av.VideoFrame.from_ndarray(rgb, "rgb24").reformat(format="bgr0")))
        out.mux(s.encode(None))
        samples = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), "s16", "mono")
        samples.rate = 8000
        out.mux(sound.encode(samples))
    with ClipReader(path) as clip:
        assert (clip.width, clip.height) == (32, 48)
        assert clip.changes == [
            "turned 90 degrees clockwise as its display matrix says",
            "audio not coded",
        ]
        got = list(clip)
    assert len(got) == 2 and np.array_equal(got[1], np.rot90(frames[1], -1))


def test_p_frame_seam(tmp_path, tiny_codec, video_codec) -> None:
    inter = VideoCodec(tiny_codec, LosslessResidual())
    src, dst = tmp_path / "in.mkv", tmp_path / "a.lcv"
    write_clip(src, frames_of(7, 32, 48))
    summary = encode_video(src, dst, gop=3, codec=inter)
    assert [f.type for f in summary.frames] == list("IPPIPPI")
    assert scan_video(dst).header.inter_id == "residual-test"
    decoded = list(iter_frames(dst, inter))
    source, _ = read_clip(src)
    assert len(decoded) == 7 and (decoded[1] == source[1]).all()  # this P coder is lossless
    assert (decoded[3] != source[3]).any()  # the I-frame is not
    with pytest.raises(BitstreamError, match="P-frame model"):
        list(iter_frames(dst, video_codec))
    # a quality codes I- and P-frames alike: only those both models have
    assert tiny_codec.qualities > inter.qualities == 6
    with pytest.raises(ValueError, match=r"1\.\.6"):
        encode_video(src, dst, quality=7, codec=inter)


@pytest.mark.parametrize("full_range", [False, True])
def test_add_rgb_change_keeps_untouched_planes(full_range) -> None:
    frame = to_yuv420(smooth_image(15, 22, seed=3), full_range)  # odd size: chroma padded
    rgb = to_rgb(frame, full_range)
    same = add_rgb_change(frame, rgb, rgb, full_range)
    assert all((a == b).all() for a, b in zip(planes(same), planes(frame), strict=True))
    assert same.color_range == frame.color_range
    brighter = add_rgb_change(frame, rgb, rgb.astype(np.int16) + 10, full_range)
    (y0, u0, v0), (y1, u1, v1) = planes(frame), planes(brighter)
    expected = 10.0 if full_range else 10 * 219 / 255
    assert np.abs(y1.astype(float) - y0 - expected).max() <= 0.5 + 1e-9  # before clipping
    assert (u1 == u0).all() and (v1 == v0).all()  # grey change: no chroma


# -- command line ------------------------------------------------------------------------
def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_round_trip_and_info(tmp_path, clip, tiny_weights, capsys) -> None:
    lcv, y4m, pngs = tmp_path / "a.lcv", tmp_path / "a.y4m", tmp_path / "frames"
    code, out, _ = run(["--model", tiny_weights, "encode", clip, "-o", lcv, "--gop", "1"], capsys)
    assert code == 0 and "4 I, 0 P" in out and "no P-frame model" in out  # all-intra
    code, out, _ = run(["info", lcv, "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["gop_requested"] == 1 and info["frame_types"] == {"I": 4, "P": 0}
    assert [f["type"] for f in info["frames"]] == ["I"] * 4 and info["fps"] == "30000/1001"
    assert info["header_bytes"] + sum(f["bytes"] for f in info["frames"]) == lcv.stat().st_size
    assert all(f["bits"] == 8 * f["bytes"] for f in info["frames"])
    code, out, _ = run(["info", lcv], capsys)
    assert code == 0 and "frame 3: I" in out
    assert run(["info", lcv, "--plot", tmp_path / "bits.png"], capsys)[0] == 0
    assert Image.open(tmp_path / "bits.png").format == "PNG"
    code, _, err = run(["info", lcv, "--plot", tmp_path / "bits.txt"], capsys)
    assert code == 2 and err.startswith("error:") and not (tmp_path / "bits.txt").exists()
    assert run(["--model", tiny_weights, "decode", lcv, "-o", y4m], capsys)[0] == 0
    frames, fps = read_clip(y4m)
    assert len(frames) == 4 and frames[0].shape == (32, 48, 3) and fps == FPS
    assert run(["--model", tiny_weights, "decode", lcv, "-o", pngs], capsys)[0] == 0
    assert sorted(p.name for p in pngs.iterdir()) == [f"{i:06d}.png" for i in range(4)]


def test_cli_batch_names_video_outputs(tmp_path, clip, lcv, tiny_weights, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    second = tmp_path / "second.lcv"
    second.write_bytes(lcv.read_bytes())
    assert run(["--model", tiny_weights, "decode", lcv, second, "-o", out], capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip.y4m", "second.y4m"]
    assert len(read_clip(out / "second.y4m")[0]) == 4
    args = ["--model", tiny_weights, "encode", clip, tmp_path / "in.png", "-o", out]
    Image.fromarray(frames_of(1, 32, 48)[0]).save(tmp_path / "in.png")
    assert run([*args, "--gop", "1"], capsys)[0] == 0
    assert {"clip.lcv", "in.lcf"} <= {p.name for p in out.iterdir()}


def test_cli_encodes_a_folder_of_frames(tmp_path, lcv, tiny_weights, capsys) -> None:
    frames, again = tmp_path / "frames", tmp_path / "again.lcv"
    assert run(["--model", tiny_weights, "decode", lcv, "-o", frames], capsys)[0] == 0
    args = ["--model", tiny_weights, "encode", frames, "-o", again, "--gop", "1"]
    code, _, err = run(args, capsys)
    assert code == 2 and "--fps" in err and not again.exists()
    assert run([*args, "--fps", "30000/1001"], capsys)[0] == 0
    code, out, _ = run(["info", again, "--json"], capsys)
    info = json.loads(out)
    assert info["frame_types"] == {"I": 4, "P": 0} and info["fps"] == "30000/1001"
    assert (info["width"], info["height"]) == (48, 32)
    coded = again.read_bytes()
    Image.new("RGB", (10, 10)).save(frames / "000009.png")  # a frame of another size
    code, _, err = run([*args, "--fps", "25"], capsys)
    assert code == 2 and "frame 4 (000009.png) is 10x10" in err
    assert again.read_bytes() == coded  # the failed run left the earlier file alone


def test_cli_truncation_with_and_without_salvage(tmp_path, lcv, tiny_weights, capsys) -> None:
    data = lcv.read_bytes()
    summary = scan_video(lcv)
    bounds = np.cumsum([len(summary.header.pack())] + [f.bytes for f in summary.frames])
    for k, cut in enumerate(bounds[:-1]):
        for at in (cut, cut + 5):  # at a frame boundary and inside the frame
            bad, out = tmp_path / "bad.lcv", tmp_path / "out.y4m"
            bad.write_bytes(data[:at])
            code, _, err = run(["--model", tiny_weights, "decode", bad, "-o", out], capsys)
            assert code == 2 and err.startswith("error:") and f"frame {k} " in err
            assert err.count("\n") == 1 and not out.exists()
            args = ["--model", tiny_weights, "decode", bad, "-o", out, "--salvage"]
            code, _, err = run(args, capsys)
            if k == 0:  # nothing intact to salvage
                assert code == 2 and not out.exists()
                continue
            assert code == 0 and err.startswith("warning:") and f"frame {k} " in err
            assert len(read_clip(out)[0]) == k
            out.unlink()
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.lcv"]  # no temporary files left


def test_p_frame_in_a_file_without_a_p_frame_model() -> None:
    """A P-frame record (with a right CRC) in a file whose header names no P-frame model is
    damage, not something to decode with whatever P-frame model is loaded."""
    data, starts = container_bytes()
    header = read_header(io.BytesIO(data))
    intra_only = replace(header, inter_id="", inter_digest=bytes(8))
    got, error = records(intra_only.pack() + data[starts[0] :])
    assert len(got) == 1
    assert isinstance(error, FrameDamaged) and error.frame == 1
    assert "invalid frame type" in str(error)


def test_intact_record_with_a_bad_payload(tmp_path, lcv, tiny_weights, capsys) -> None:
    f = io.BytesIO(lcv.read_bytes())
    header = read_header(f)
    first = next(read_frames(f, header))
    bad, out = tmp_path / "bad.lcv", tmp_path / "out.y4m"
    with open(bad, "wb") as file, VideoWriter(file, header) as w:
        w.write(FRAME_I, first.payload)
        w.write(FRAME_I, b"not an image file")  # the record's CRC is right
    assert scan_video(bad).damage.frame == 1
    args = ["--model", tiny_weights, "decode", bad, "-o", out, "--salvage"]
    code, _, err = run(args, capsys)
    assert code == 0 and "frame 1 is corrupted" in err and len(read_clip(out)[0]) == 1


def test_cli_errors(tmp_path, lcv, tiny_weights, capsys) -> None:
    model = ["--model", tiny_weights]
    cases = [
        [*model, "decode", lcv, "-o", tmp_path / "out.avi"],
        [*model, "encode", tmp_path / "missing.mp4", "-o", tmp_path / "a.lcv"],
        [*model, "encode", lcv, "-o", tmp_path / "a.lcv", "--gop", "-1"],
        [*model, "encode", lcv, "-o", tmp_path / "a.lcv", "--refine", "5"],  # pictures only
        [*model, "encode", tmp_path / "x.yuv", "-o", tmp_path / "a.lcv", "--size", "3x"],
        ["info", tmp_path / "missing.lcv"],
    ]
    for args in cases:
        code, _, err = run(args, capsys)
        assert code == 2 and err.startswith("error:") and err.count("\n") == 1, args
    assert not list(tmp_path.iterdir())


# -- rd --video --------------------------------------------------------------------------
def test_rd_video(tmp_path, tiny_weights, capsys) -> None:
    data, out = tmp_path / "seqs", tmp_path / "rd"
    data.mkdir()
    write_clip(data / "tiny.y4m", frames_of(3, 32, 48))
    args = ["--model", tiny_weights, "rd", data, "--video", "-o", out, "--frames", "2"]
    args += ["--codecs", "ours-intra,x264-ultrafast", "--ref-codec", "x264-ultrafast"]
    args += ["-q", "ours-intra=2,6", "-q", "x264-ultrafast=30,40", "--gop", "2"]
    code, text, err = run(args, capsys)
    assert code == 0, err
    result = json.loads((out / "rd.json").read_text())
    assert result["sequences"][0]["frames"] == 2 and result["gop"] == 2
    assert len(result["records"]) == 4
    for r in result["records"]:
        assert r["bpp"] == pytest.approx(8 * r["bytes"] / (48 * 32 * 2))
        assert r["psnr_yuv"] == pytest.approx((6 * r["psnr_y"] + r["psnr_u"] + r["psnr_v"]) / 8)
    assert [r["codec"] for r in result["bd"]] == ["ours-intra", "ours-intra"]
    assert (out / "rd.csv").is_file() and (out / "rd_tiny.png").is_file()
    assert "BD-rate PSNR-YUV" in text
    code, text, _ = run(args, capsys)  # everything from the cache
    assert code == 0 and "0 coded, 4 from cache" in text
    (out / "rd.cache.jsonl").unlink()  # a fresh checkout: from rd.json
    code, text, _ = run(args, capsys)
    assert code == 0 and "0 coded, 4 from cache" in text
