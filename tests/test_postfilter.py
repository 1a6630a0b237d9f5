"""The HEVC/HEIC post-filter: mechanics with a tiny random network, the CLI, the shipped weights."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli import enhance as enhance_cli
from evaluation.isobmff import primary_hevc_nals
from evaluation.metrics import psnr
from postfilter import DEFAULT_WEIGHTS, PostFilter, data, enhance, filter_for, heic
from postfilter.calibrate import main as calibrate
from postfilter.hevc import heif_qp, slice_qps
from postfilter.model import ArtifactNet, FilterConfig
from postfilter.restore import RestoreConfig, Restorer
from postfilter.train import (
    calibrate_scale,
    init_from_restorer,
    luma_psnr,
    moving_average,
    open_log,
    patch_mse,
    save_checkpoint,
)
from postfilter.train import main as train
from postfilter.weights import export_restorer, export_weights, load_weights

from .conftest import smooth_image, write_photos

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def tiny_pf(tmp_path_factory):
    """Weights of a tiny post-filter with random (non-identity) weights."""
    torch.manual_seed(0)
    net = ArtifactNet(FilterConfig(channels=8, blocks=2))
    torch.nn.init.normal_(net.tail.weight, std=0.05)
    path = tmp_path_factory.mktemp("pf") / "tiny.safetensors"
    export_weights(net, path, model_id="tiny-pf")
    return path


def test_shapes_and_modes(tiny_pf):
    pf = PostFilter(tiny_pf)
    rgb = smooth_image(37, 53)
    told, blind = pf(rgb, 37.0), pf(rgb)
    assert told.shape == blind.shape == rgb.shape and told.dtype == np.uint8
    assert not np.array_equal(told, blind)  # blind is its own mode
    assert not np.array_equal(pf(rgb, 25.0), pf(rgb, 45.0))  # the QP conditions the output


def test_tiles_match_untiled(tiny_pf):
    pf = PostFilter(tiny_pf)
    rgb = smooth_image(90, 131, seed=3)
    diff = pf(rgb, 37.0, tile=16).astype(int) - pf(rgb, 37.0, tile=512).astype(int)
    assert np.abs(diff).max() <= 1
    assert np.array_equal(pf(rgb, 37.0, tile=16, progress=True), pf(rgb, 37.0, tile=16))


def test_enhance_keeps_size_and_alpha(tiny_pf):
    img = Image.fromarray(smooth_image(40, 30)).convert("RGBA")
    out = enhance(img, qp=30, weights=tiny_pf)
    assert out.mode == "RGBA" and out.size == img.size
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(img)[..., 3])


def write_clip(path: Path, frames: int, h: int = 48, w: int = 64, rotation: int = 0) -> None:
    """A small H.264 clip of moving smooth pictures (``rotation``: its display matrix's)."""
    import av

    with av.open(str(path), "w") as f:
        s = f.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if rotation:
            s.set_display_rotation(rotation)
        for i in range(frames):
            f.mux(s.encode(av.VideoFrame.from_ndarray(smooth_image(h, w, seed=i), "rgb24")))
        f.mux(s.encode(None))


def test_init_from_restorer_copies_the_trunk(tmp_path):
    torch.manual_seed(0)
    src = Restorer(RestoreConfig("denoise", channels=8, blocks=2))
    export_restorer(src, tmp_path / "dn.safetensors", "tiny-dn")
    net = ArtifactNet(FilterConfig(channels=8, blocks=2))
    init_from_restorer(net, tmp_path / "dn.safetensors")
    assert torch.equal(net.body[1].conv2.weight, src.net.body[1].conv2.weight)
    assert torch.equal(net.head.weight[:, :12], src.net.head.weight[:, :12])
    assert not net.head.weight[:, 12:].any()  # the QP planes start unused
    rgb = torch.rand(1, 3, 8, 8)
    assert torch.equal(net(rgb, torch.tensor([[0.3, 1.0]])), rgb)  # and the net as the identity
    with pytest.raises(SystemExit):
        init_from_restorer(
            ArtifactNet(FilterConfig(channels=16, blocks=2)), tmp_path / "dn.safetensors"
        )


def test_calibration_switches_off_a_harmful_filter():
    torch.manual_seed(0)
    net = ArtifactNet(FilterConfig(channels=8, blocks=1)).eval()
    torch.nn.init.normal_(net.tail.weight, std=0.5)  # a large random correction hurts
    orig = np.stack([smooth_image(32, 32, seed=i) for i in range(4)])
    dec = np.clip(orig.astype(int) + 3, 0, 255).astype(np.uint8)
    val = {"orig": orig, "dec": dec, "qp": np.array([22, 22, 37, 37], np.float32)}
    points, blind = calibrate_scale(net, val, max_loss_db=0.03)
    assert points == [(22.0, 0.0), (37.0, 0.0)] and blind == 0.0


def test_training_with_clips_resumes_and_exports(tmp_path, capsys):
    photos, clips = write_photos(tmp_path / "photos", 2, 64, 72), tmp_path / "clips"
    clips.mkdir()
    write_clip(clips / "c.mp4", frames=10)
    torch.manual_seed(0)
    export_restorer(
        Restorer(RestoreConfig("denoise", channels=8, blocks=1)), tmp_path / "dn.st", "dn"
    )
    run_dir, export = tmp_path / "run", tmp_path / "pf.safetensors"
    args = [photos, "--clips", clips, "--cache", tmp_path / "cache", "--out", run_dir]
    args += ["--crops-per-image", "1", "--crops-per-clip", "4", "--crop", "32"]
    args += ["--holdout-every", "2", "--channels", "8", "--blocks", "1", "--batch", "2"]
    args += ["--patch", "16", "--log-every", "2", "--val-every", "2", "--ckpt-every", "2"]
    args += ["--init", tmp_path / "dn.st", "--no-bf16", "--export", export, "--ema", "0.9"]
    assert train([str(a) for a in [*args, "--steps", "2"]]) == 0
    assert "initialised from" in capsys.readouterr().out
    pairs = data.load(tmp_path / "cache", "train")
    assert pairs["dec"].shape == (5, 32, 32, 3)  # one HEIC crop, four clip crops
    assert set(pairs["qp"][1:]) <= set(range(22, 48))
    assert len(data.load(tmp_path / "cache", "val")["qp"]) == 2 * len(data.VAL_QUALITIES)
    assert train([str(a) for a in [*args, "--steps", "4"]]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert torch.load(run_dir / "ckpt.pt", weights_only=True)["ema"]["n_averaged"] == 4
    net, meta = load_weights(export)
    assert net.config == FilterConfig(channels=8, blocks=1)
    assert all(0 <= s <= 1 for s in meta["blind_scale"][1])
    with open(export.with_name("pf.train_log.csv")) as f:
        assert any(row["step"] == "4" for row in csv.DictReader(f))


def test_moving_average_averages_and_resumes(tmp_path):
    net = ArtifactNet(FilterConfig(channels=8, blocks=1))
    opt = torch.optim.Adam(net.parameters())
    ema = moving_average(net, 0.75, tmp_path / "none.pt")
    ema.update_parameters(net)  # the first update copies the weights
    before = net.tail.weight.detach().clone()
    with torch.no_grad():
        net.tail.weight.add_(1.0)
    ema.update_parameters(net)
    assert torch.allclose(ema.module.tail.weight, before + 0.25)
    save_checkpoint(tmp_path / "ckpt.pt", net, opt, 2, 1.0, ema)
    again = moving_average(ArtifactNet(net.config), 0.75, tmp_path / "ckpt.pt")
    assert torch.equal(again.module.tail.weight, ema.module.tail.weight)
    assert moving_average(net, 0.0, tmp_path / "ckpt.pt") is None


def test_calibration_pools_the_caches_held_out_pairs(tmp_path, tiny_pf, capsys):
    photos = write_photos(tmp_path / "photos", 2, 64, 72)
    caches = [tmp_path / f"cache{seed}" for seed in (1, 2)]
    for seed, cache in enumerate(caches, 1):
        data.build(photos, cache, crops_per_image=1, crop=32, val_every=2, seed=seed)
    out = tmp_path / "calibrated.safetensors"
    assert calibrate([str(tiny_pf), "--cache", *map(str, caches), "-o", str(out)]) == 0
    assert "blind residual scale" in capsys.readouterr().out
    net, meta = load_weights(out)
    qps, scales = meta["residual_scale"]
    assert len(qps) == len(data.VAL_QUALITIES)  # both caches' QPs merged per quality
    assert all(0 <= s <= 1 for s in scales) and meta["model_id"] == "tiny-pf"


def test_video_training_holds_out_a_clip_and_validates_luma(tmp_path, capsys):
    photos, clips = write_photos(tmp_path / "photos", 2, 64, 72), tmp_path / "clips"
    clips.mkdir()
    for name in ("a", "b"):
        write_clip(clips / f"{name}.mp4", frames=10)
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    args = [photos, "--clips", clips, "--cache", cache, "--out", run_dir, "--clip-holdout", "2"]
    args += ["--share-420", "1", "--loss", "relative-yuv", "--crops-per-image", "1"]
    args += ["--crops-per-clip", "4", "--crop", "32", "--holdout-every", "2", "--channels", "8"]
    args += ["--blocks", "1", "--batch", "2", "--patch", "16", "--val-every", "2", "--no-bf16"]
    assert train([str(a) for a in [*args, "--steps", "2"]]) == 0
    assert len(data.load(cache, "train")["qp"]) == 1 + 4  # clip "b" validates
    val = data.load(cache, "val")
    n_photo = 2 * len(data.VAL_QUALITIES)
    assert list(val["qp"][n_photo:]) == [q for q in data.VAL_CLIP_QPS for _ in range(4)]
    rows = list(csv.DictReader((run_dir / "log.csv").open()))
    assert rows[-1]["step"] == "2" and rows[-1]["val_gain_qp37_db"]


def test_grain_doubles_the_validation_crops(tmp_path):
    photos, cache = write_photos(tmp_path / "photos", 2, 64, 72), tmp_path / "cache"
    data.build(photos, cache, crops_per_image=2, crop=32, val_every=2, grain_share=1.0)
    clean = tmp_path / "clean"
    data.build(photos, clean, crops_per_image=2, crop=32, val_every=2)
    val, val_clean = data.load(cache, "val"), data.load(clean, "val")
    assert len(val["qp"]) == 2 * len(val_clean["qp"])  # each crop clean and with grain
    k = len(data.VAL_QUALITIES)  # per crop: k clean pairs, then k with grain
    grain = val["orig"][k : 2 * k].astype(float) - val["orig"][:k]
    assert 2.5 < grain.std() < 3.5  # VAL_GRAIN_SIGMA


def test_yuv_loss_weighs_luma_and_luma_psnr_ignores_chroma():
    grey = torch.full((1, 3, 4, 4), 0.1)
    assert patch_mse(grey).item() == pytest.approx(0.01)
    assert patch_mse(grey, yuv=True).item() == pytest.approx(0.75 * 0.01)  # Y only, weight 6/8
    a = np.full((8, 8, 3), 100, np.uint8)
    b = a.copy()
    b[..., 0] += 2  # red up, green down by about what keeps the luma
    b[..., 1] -= 1
    assert luma_psnr(a, b) > psnr(a, b) + 10


def test_resumed_log_keeps_its_columns(tmp_path):
    path = tmp_path / "log.csv"
    f, log = open_log(path, ["step", "old", "loss"])
    with f:
        log.writerow({"step": 1, "old": 5, "loss": 0.5})
    f, log = open_log(path, ["step", "loss"])  # a field dropped since: rows stay aligned
    with f:
        log.writerow({"step": 2, "loss": 0.25})
    rows = list(csv.DictReader(path.open()))
    assert rows[1] == {"step": "2", "old": "", "loss": "0.25"}
    with pytest.raises(SystemExit):
        open_log(path, ["step", "new"])


def test_quality_to_qp_matches_x265_log(tmp_path):
    log = tmp_path / "x265.csv"
    img = Image.fromarray(smooth_image(64, 64))
    for quality in (10, 20):
        heic.encode(img, quality, x265={"csv": str(log), "csv-log-level": "1"})
        qp = float(list(csv.reader(log.open()))[-1][4])
        assert qp == pytest.approx(heic.quality_to_qp(quality), abs=0.01)
    assert heic.qp_to_quality(37) == 20


@pytest.mark.parametrize("chroma", ["444", "420"])
def test_heif_qp_reads_the_slice_qp(chroma):
    img = Image.fromarray(smooth_image(72, 200, seed=2))  # more than one 64x64 CTB
    for quality in (0, 20, 50):
        data = heic.encode(img, quality, chroma)
        assert heif_qp(data) == round(heic.quality_to_qp(quality))
    multi = heic.encode(img, 20, chroma, x265={"slices": "2"})  # a second slice segment
    assert slice_qps(*primary_hevc_nals(multi)) == [round(heic.quality_to_qp(20))] * 2
    assert heif_qp(b"not a HEIF file") is None
    assert slice_qps([], [b"\x26\x01\xaf"]) == []  # a slice without its parameter sets


def run_cli(argv, capsys):
    parser = argparse.ArgumentParser()
    enhance_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["enhance", *map(str, argv)])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def inputs(tmp_path):
    img = Image.fromarray(smooth_image(48, 64))
    img.save(tmp_path / "in.png")
    (tmp_path / "in.heic").write_bytes(heic.encode(img, 20))
    return tmp_path


@pytest.mark.parametrize(
    "name, extra, how",
    [
        ("in.png", ["--qp", "37"], "at QP 37)"),
        ("in.heic", [], "at QP 37, read from the file"),
        ("in.heic", ["--qp", "30"], "at QP 30)"),
        ("in.png", [], "blind"),
    ],
)
def test_cli_round_trip(inputs, tiny_pf, capsys, name, extra, how):
    out = inputs / "out.png"
    code, stdout, _ = run_cli([inputs / name, "-o", out, "--weights", tiny_pf, *extra], capsys)
    assert code == 0 and "tiny-pf" in stdout and how in stdout
    assert Image.open(out).size == (64, 48)


def test_cli_turns_upright_and_keeps_the_icc_profile(tmp_path, tiny_pf, capsys):
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    icc = b"any profile: the filter works on the coded values and passes it on"
    Image.fromarray(smooth_image(48, 64)).save(src, exif=exif.tobytes(), icc_profile=icc)
    assert run_cli([src, "-o", out, "--weights", tiny_pf, "--qp", "37"], capsys)[0] == 0
    with Image.open(out) as im:
        assert im.size == (48, 64) and im.info["icc_profile"] == icc


def test_cli_keeps_grayscale_16_bit_depth_and_alpha(tmp_path, tiny_pf, capsys):
    """16-bit grayscale is filtered as its top 8 bits (not clipped to white) and stays
    grayscale; alpha passes through."""
    gray16, gray8, rgba = tmp_path / "g16.png", tmp_path / "g8.png", tmp_path / "rgba.png"
    levels = smooth_image(48, 64)[..., 0]
    Image.fromarray(levels.astype(np.uint16) * 257).save(gray16)
    Image.fromarray(levels).save(gray8)
    Image.fromarray(smooth_image(48, 64)).convert("RGBA").save(rgba)
    for src in (gray16, gray8, rgba):
        argv = [src, "-o", tmp_path / f"out_{src.name}", "--weights", tiny_pf, "--qp", "37"]
        assert run_cli(argv, capsys)[0] == 0
    with Image.open(tmp_path / "out_g16.png") as a, Image.open(tmp_path / "out_g8.png") as b:
        assert a.mode == "L" and np.array_equal(np.asarray(a), np.asarray(b))
    with Image.open(tmp_path / "out_rgba.png") as im:
        assert im.mode == "RGBA" and (np.asarray(im)[..., 3] == 255).all()


def test_cli_video_round_trip(tmp_path, tiny_pf, capsys):
    import av

    src = tmp_path / "in.mp4"
    write_clip(src, frames=3, rotation=90)
    for out in (tmp_path / "out.mkv", tmp_path / "out.y4m"):
        code, _, _ = run_cli([src, "-o", out, "--weights", tiny_pf, "--quiet"], capsys)
        assert code == 0
        with av.open(str(out)) as f:
            frames = list(f.decode(video=0))
        assert len(frames) == 3
        if out.suffix == ".mkv":  # FFV1 output keeps the display matrix (.y4m has none)
            assert frames[0].rotation == 90


def test_cli_video_copies_the_sound_into_mkv(tmp_path, tiny_pf, capsys):
    import av

    src = tmp_path / "talk.mkv"
    with av.open(str(src), "w") as f:
        v = f.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        a = f.add_stream("pcm_s16le", rate=8000, layout="mono")
        for i in range(5):
            f.mux(v.encode(av.VideoFrame.from_ndarray(smooth_image(48, 64, seed=i), "rgb24")))
            pcm = np.full((1, 320), 100 * i, np.int16)
            samples = av.AudioFrame.from_ndarray(pcm, "s16", "mono")
            samples.rate, samples.pts = 8000, 320 * i
            f.mux(a.encode(samples))
        f.mux(v.encode(None))
        f.mux(a.encode(None))
    with av.open(str(src)) as f:
        sound = b"".join(bytes(p) for p in f.demux(audio=0) if p.size)
    out = tmp_path / "out.mkv"
    code, stdout, _ = run_cli([src, "-o", out, "--weights", tiny_pf, "--quiet"], capsys)
    assert code == 0
    with av.open(str(out)) as f:
        assert len(list(f.decode(video=0))) == 5
    with av.open(str(out)) as f:
        assert b"".join(bytes(p) for p in f.demux(audio=0) if p.size) == sound
    code, stdout, _ = run_cli([src, "-o", tmp_path / "out.y4m", "--weights", tiny_pf], capsys)
    assert code == 0 and "sound not copied" in stdout


def test_cli_video_keeps_a_full_range_source_full_range(tmp_path, tiny_pf, capsys):
    import av
    from av.video.reformatter import ColorRange

    from codec.video_io import planes, to_yuv420

    src, out = tmp_path / "in.y4m", tmp_path / "out.y4m"
    ramp = np.linspace(0, 255, 64 * 48).reshape(48, 64, 1).repeat(3, 2).astype(np.uint8)
    with av.open(str(src), "w", format="yuv4mpegpipe") as f:
        s = f.add_stream("rawvideo", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.color_range = ColorRange.JPEG
        f.mux(s.encode(to_yuv420(ramp, full_range=True)))
        f.mux(s.encode(None))
    code, _, err = run_cli([src, "-o", out, "--weights", tiny_pf, "--quiet"], capsys)
    assert code == 0, err
    assert b"XCOLORRANGE=FULL" in out.read_bytes()[:100]
    with av.open(str(src)) as a, av.open(str(out)) as b:
        y_in, y_out = (planes(next(f.decode(video=0)))[0].astype(float) for f in (a, b))
    assert y_in.min() < 5 and y_in.max() > 250
    # not squeezed into 16..235 (the tiny random filter adds noise, so not exact either)
    assert (y_out < 16).mean() > 0.03 and (y_out > 235).mean() > 0.03


@pytest.mark.parametrize(
    "args",
    [
        ["missing.png", "-o", "out.png"],
        ["in.png", "-o", "out.png", "--qp", "80"],
        ["in.png", "-o", "out.png", "--tile", "7"],
        ["in.png", "-o", "out.xyz"],
        ["in.png", "-o", "nodir/out.png"],
        ["bad.heic", "-o", "out.png"],
        ["bad.png", "-o", "out.png"],
        ["bad.mp4", "-o", "out.mkv"],
        ["coded.lcf", "-o", "out.png"],
        ["in.png", "-o", "out.png", "--weights", "none.safetensors"],
        ["in.png", "-o", "out.png", "--weights", "in.png"],
        ["in.png", "-o", "out.png", "--task", "denoise", "--ensemble", "4"],
        ["in.png", "-o", "in.png"],
    ],
)
def test_cli_errors(inputs, tiny_pf, capsys, args):
    for name in ("bad.heic", "bad.png", "bad.mp4", "coded.lcf"):
        (inputs / name).write_bytes(b"\x00not a real file" * 10)
    before = set(inputs.iterdir())
    argv = [inputs / a if "." in a else a for a in args]
    if "--weights" not in args:
        argv += ["--weights", tiny_pf]
    code, _, err = run_cli(argv, capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:")
    assert set(inputs.iterdir()) == before  # no output, no temporary file


def test_shipped_weights_improve_heic_decode():
    """A crop of a photo held out from training, coded at quality 20 (QP 37)."""
    pf = PostFilter(DEFAULT_WEIGHTS)
    ref = Image.open(DATA / "postfilter_wiki_003_crop.png").convert("RGB")
    dec = np.asarray(heic.decode(heic.encode(ref, 20)))
    base = psnr(ref, dec)
    assert psnr(ref, pf(dec, heic.quality_to_qp(20))) > base + 0.1
    assert psnr(ref, pf(dec)) > base + 0.05


def test_shipped_video_filter_improves_a_420_decode():
    """The held-out crop coded 4:2:0 at QP 37, scored on luma as the video benchmark is."""
    pf = filter_for("qp", video=True)
    assert pf.model_id == "hevc-video-v1"
    ref = np.asarray(Image.open(DATA / "postfilter_wiki_003_crop.png").convert("RGB"))
    dec = np.asarray(heic.decode(heic.encode(Image.fromarray(ref), 20, "420")))
    base = luma_psnr(ref, dec)
    assert luma_psnr(ref, pf(dec, heic.quality_to_qp(20))) > base + 0.1
    assert luma_psnr(ref, pf(dec)) > base + 0.02


def test_shipped_lcodec_filter_improves_our_decode():
    """The same held-out crop, coded by the shipped codec at quality 3."""
    import codec
    from postfilter import decode_enhanced

    ref = Image.open(DATA / "postfilter_wiki_003_crop.png").convert("RGB")
    data = codec.encode(ref, quality=3)
    base = psnr(ref, codec.decode(data))
    assert psnr(ref, decode_enhanced(data)) > base + 0.1
