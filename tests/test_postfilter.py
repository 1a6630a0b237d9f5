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
from evaluation.metrics import psnr
from postfilter import DEFAULT_WEIGHTS, PostFilter, enhance, heic
from postfilter.model import FilterConfig, PostFilterNet
from postfilter.weights import export_weights

from .conftest import smooth_image

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def tiny_pf(tmp_path_factory):
    """Weights of a tiny post-filter with random (non-identity) weights."""
    torch.manual_seed(0)
    net = PostFilterNet(FilterConfig(channels=8, blocks=2, est_channels=8))
    torch.nn.init.normal_(net.filter.tail.weight, std=0.05)
    path = tmp_path_factory.mktemp("pf") / "tiny.safetensors"
    export_weights(net, path, model_id="tiny-pf")
    return path


def test_shapes_and_modes(tiny_pf):
    pf = PostFilter(tiny_pf)
    rgb = smooth_image(37, 53)
    told, blind = pf(rgb, 37.0), pf(rgb)
    assert told.shape == blind.shape == rgb.shape and told.dtype == np.uint8
    assert np.isfinite(pf.estimate_qp(rgb))
    assert not np.array_equal(pf(rgb, 25.0), pf(rgb, 45.0))  # the QP conditions the output


def test_tiles_match_untiled(tiny_pf):
    pf = PostFilter(tiny_pf)
    rgb = smooth_image(90, 131, seed=3)
    diff = pf(rgb, 37.0, tile=16).astype(int) - pf(rgb, 37.0, tile=512).astype(int)
    assert np.abs(diff).max() <= 1


def test_enhance_keeps_size_and_alpha(tiny_pf):
    img = Image.fromarray(smooth_image(40, 30)).convert("RGBA")
    out = enhance(img, qp=30, weights=tiny_pf)
    assert out.mode == "RGBA" and out.size == img.size
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(img)[..., 3])


def test_quality_to_qp_matches_x265_log(tmp_path):
    log = tmp_path / "x265.csv"
    img = Image.fromarray(smooth_image(64, 64))
    for quality in (10, 20):
        heic.encode(img, quality, x265={"csv": str(log), "csv-log-level": "1"})
        qp = float(list(csv.reader(log.open()))[-1][4])
        assert qp == pytest.approx(heic.quality_to_qp(quality), abs=0.01)
    assert heic.qp_to_quality(37) == 20


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


@pytest.mark.parametrize("name, extra", [("in.png", ["--qp", "37"]), ("in.heic", [])])
def test_cli_round_trip(inputs, tiny_pf, capsys, name, extra):
    out = inputs / "out.png"
    code, stdout, _ = run_cli([inputs / name, "-o", out, "--weights", tiny_pf, *extra], capsys)
    assert code == 0 and "tiny-pf" in stdout
    assert Image.open(out).size == (64, 48)


def test_cli_video_round_trip(tmp_path, tiny_pf, capsys):
    import av

    src = tmp_path / "in.mp4"
    with av.open(str(src), "w") as f:
        s = f.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            f.mux(s.encode(av.VideoFrame.from_ndarray(smooth_image(48, 64, seed=i), "rgb24")))
        f.mux(s.encode(None))
    for out in (tmp_path / "out.mkv", tmp_path / "out.y4m"):
        code, _, _ = run_cli([src, "-o", out, "--weights", tiny_pf, "--quiet"], capsys)
        assert code == 0
        with av.open(str(out)) as f:
            assert sum(1 for _ in f.decode(video=0)) == 3


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
        ["in.png", "-o", "out.png", "--weights", "none.safetensors"],
        ["in.png", "-o", "out.png", "--weights", "in.png"],
    ],
)
def test_cli_errors(inputs, tiny_pf, capsys, args):
    for name in ("bad.heic", "bad.png", "bad.mp4"):
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
    assert psnr(ref, pf(dec, heic.quality_to_qp(20))) > base + 0.02
    assert psnr(ref, pf(dec)) > base + 0.02
