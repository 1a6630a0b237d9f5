"""RD evaluation: BD-rate maths, metrics, anchors, the runner, its cache and its errors."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli import rd as rd_cli
from evaluation import EvaluationError, run_rd
from evaluation import codecs as codecs_mod
from evaluation.bd import bd_psnr, bd_rate
from evaluation.codecs import ANCHORS, parse_codec_names
from evaluation.curves import PUBLISHED_KODAK, load_curves
from evaluation.isobmff import HeifParseError, hevc_payload_size
from evaluation.metrics import MAX_DB, bpp, ms_ssim, ms_ssim_db, psnr
from evaluation.runner import parse_qualities

RATES = [0.1, 0.25, 0.5, 1.0, 2.0]
PSNRS = [27.0, 30.0, 33.0, 36.5, 40.0]


def test_bd_rate_of_a_curve_against_itself_is_zero() -> None:
    assert bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_of_scaled_rates() -> None:
    assert bd_rate(RATES, PSNRS, [0.9 * r for r in RATES], PSNRS) == pytest.approx(-10.0)
    assert bd_rate(RATES, PSNRS, [1.1 * r for r in RATES], PSNRS) == pytest.approx(10.0)


def test_bd_psnr_of_shifted_curve() -> None:
    assert bd_psnr(RATES, PSNRS, RATES, [p + 1 for p in PSNRS]) == pytest.approx(1.0)
    assert bd_rate(RATES, PSNRS, RATES, [p + 1 for p in PSNRS]) < 0


def test_bd_ignores_point_order_and_needs_overlap() -> None:
    assert bd_rate(RATES[::-1], PSNRS[::-1], RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)
    assert bd_rate(RATES, PSNRS, RATES, [p + 20 for p in PSNRS]) is None
    assert bd_rate(RATES[:1], PSNRS[:1], RATES, PSNRS) is None


def test_psnr_bpp_and_ms_ssim_db() -> None:
    a = np.zeros((4, 6, 3), np.uint8)
    assert psnr(a, a) == MAX_DB
    assert psnr(a, a + 1) == pytest.approx(10 * math.log10(255**2))
    assert psnr(Image.fromarray(a), a + 2) == pytest.approx(10 * math.log10(255**2 / 4))
    assert bpp(3, 4, 6) == 1.0
    assert ms_ssim_db(0.99) == pytest.approx(20.0)
    assert ms_ssim_db(None) is None
    with pytest.raises(ValueError):
        psnr(a, np.zeros((4, 5, 3), np.uint8))


def test_ms_ssim_needs_161_pixels() -> None:
    small = _image(64, 48)
    assert ms_ssim(small, small) is None
    big = _image(176, 168)
    assert ms_ssim(big, big) == pytest.approx(1.0)


def _image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A gradient with noise: smooth and textured regions, like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    noisy = base + rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


@pytest.mark.parametrize("name", list(ANCHORS))
def test_anchor_round_trip(name: str) -> None:
    codec = ANCHORS[name]()
    img = _image(64, 48)
    quality = codec.qualities[len(codec.qualities) // 2]
    data = codec.encode(img, quality)
    out = codec.decode(data)
    assert out.mode == "RGB" and out.size == img.size
    assert 20 < psnr(img, out) < MAX_DB
    assert codec.settings
    payload = codec.payload_size(data)
    if name == "heic":
        assert 0 < payload < len(data)
    else:
        assert payload is None


def test_heif_parser_rejects_other_files() -> None:
    with pytest.raises(HeifParseError):
        hevc_payload_size(b"\x00\x00\x00\x10ftypheic\x00\x00\x00\x00")


def test_codec_names_and_qualities() -> None:
    assert parse_codec_names("jpeg, heic-payload,jpeg") == ["jpeg", "heic"]
    assert parse_codec_names("anchors") == list(ANCHORS)
    with pytest.raises(EvaluationError):
        parse_codec_names("jpeg,bpg")
    assert parse_qualities(None) is None
    assert parse_qualities(["5,10", "20"]) == [5, 10, 20]
    assert parse_qualities(["jpeg=5,10", "webp=50"]) == {"jpeg": [5, 10], "webp": [50]}
    for bad in (["5,x"], ["jpeg="], ["5", "jpeg=5"]):
        with pytest.raises(EvaluationError):
            parse_qualities(bad)


def test_published_reference_ships_with_the_package() -> None:
    curves = load_curves(PUBLISHED_KODAK)
    assert {"bpg444", "jpeg", "webp", "vtm"} <= set(curves)
    assert curves["bpg444"].bpp == sorted(curves["bpg444"].bpp)


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    _image(176, 168, seed=1).save(folder / "a.png")
    _image(168, 176, seed=2).save(folder / "b.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_run_writes_json_csv_and_plots(image_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "rd.json"
    result = run_rd(
        image_dir,
        "jpeg,webp",
        qualities=[30, 80],
        out_json=out,
        csv=tmp_path / "out" / "rd.csv",
        plot=tmp_path / "out" / "rd.png",
        progress=False,
    )
    data = json.loads(out.read_text())
    assert [i["name"] for i in data["images"]] == ["a.png", "b.png"]
    assert len(data["records"]) == 2 * 2 * 2
    jpeg = data["codecs"]["jpeg"]["points"]
    assert [p["quality"] for p in jpeg] == [30, 80]
    assert jpeg[0]["bpp"] < jpeg[1]["bpp"] and jpeg[0]["psnr"] < jpeg[1]["psnr"]
    recs = [r for r in data["records"] if r["codec"] == "jpeg" and r["quality"] == 30]
    assert jpeg[0]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in recs]), abs=1e-5)
    assert recs[0]["bpp"] == pytest.approx(recs[0]["bytes"] * 8 / (176 * 168))
    assert 0 < recs[0]["ms_ssim"] < 1
    anchors = {(r["codec"], r["anchor"]) for r in data["bd"]}
    assert ("jpeg", "published bpg444") in anchors and ("webp", "published webp") in anchors
    assert result["evaluated"] == 8 and result["reused"] == 0
    with (tmp_path / "out" / "rd.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and set(rows[0]) >= {"codec", "bpp", "psnr", "ms_ssim"}
    assert (tmp_path / "out" / "rd.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "out" / "rd.svg").read_text().lstrip().startswith("<?xml")
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_second_run_reuses_the_cache(
    image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "rd.json"
    run_rd(image_dir, "jpeg", qualities=[40, 70], out_json=out, progress=False)
    first = json.loads(out.read_text())

    def no_encoding(*args: object) -> bytes:
        raise AssertionError("encoded again")

    monkeypatch.setattr(codecs_mod.Jpeg, "encode", no_encoding)
    result = run_rd(image_dir, "jpeg", qualities=[40, 70], out_json=out, progress=False)
    assert result["evaluated"] == 0 and result["reused"] == 4
    assert json.loads(out.read_text())["codecs"] == first["codecs"]


def test_a_fresh_checkout_reuses_the_results_file(
    image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the (uncommitted) cache, the results file's own records are reused where
    codec settings and image digest match; a changed image, or a results file that cannot
    be read, is coded anew."""
    out = tmp_path / "rd.json"
    run_rd(image_dir, "jpeg", qualities=[40, 70], out_json=out, progress=False)
    (tmp_path / "rd.cache.jsonl").unlink(missing_ok=True)
    first = json.loads(out.read_text())
    encode = codecs_mod.Jpeg.encode
    calls: list[int] = []

    def counted(*args: object) -> bytes:
        calls.append(1)
        return encode(*args)

    monkeypatch.setattr(codecs_mod.Jpeg, "encode", counted)
    result = run_rd(image_dir, "jpeg", qualities=[40, 70], out_json=out, progress=False)
    assert result["evaluated"] == 0 and not calls
    assert json.loads(out.read_text())["records"] == first["records"]

    (tmp_path / "rd.cache.jsonl").unlink(missing_ok=True)
    changed = sorted(image_dir.iterdir())[0]
    Image.open(changed).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(changed)
    result = run_rd(image_dir, "jpeg", qualities=[40, 70], out_json=out, progress=False)
    assert result["evaluated"] == 2 and result["reused"] == 2

    (tmp_path / "rd.cache.jsonl").unlink(missing_ok=True)
    out.write_text("{not json")
    result = run_rd(image_dir, "jpeg", qualities=[40, 70], out_json=out, progress=False)
    assert result["evaluated"] == 4


def _cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="lcodec")
    rd_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["rd", *argv])
    return args.func(args)


@pytest.mark.parametrize(
    "case",
    [
        "missing-dir",
        "no-images",
        "unknown-codec",
        "bad-quality",
        "quality-out-of-range",
        "quality-of-a-codec-not-run",
        "bad-reference",
        "no-ours",
    ],
)
def test_cli_errors(
    case: str,
    image_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "o" / "rd.json"
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = {
        "missing-dir": [str(tmp_path / "nope")],
        "no-images": [str(empty)],
        "unknown-codec": [str(image_dir), "--codecs", "jpeg,bpg"],
        "bad-quality": [str(image_dir), "-q", "5,high"],
        "quality-out-of-range": [str(image_dir), "--codecs", "jpeg", "-q", "jpeg=-5,50"],
        "quality-of-a-codec-not-run": [str(image_dir), "--codecs", "jpeg", "-q", "webp=50"],
        "bad-reference": [str(image_dir), "--ref-codec", "nonesuch"],
        "no-ours": [str(image_dir), "--codecs", "ours"],
    }[case]
    monkeypatch.setitem(sys.modules, "codec", types.ModuleType("codec"))  # no load_model
    assert _cli(*argv, "-o", str(out), "--quiet") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert not out.exists()


def test_cli_success(image_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rd.json"
    assert _cli(str(image_dir), "--codecs", "jpeg", "-q", "jpeg=50", "-o", str(out)) == 0
    assert "published bpg444" in capsys.readouterr().out
    assert json.loads(out.read_text())["codecs"]["jpeg"]["qualities"] == [50]


class _FakeModel:
    """Stands in for ``codec.load_model()``: JPEG at quality 20 * q."""

    qualities = 3
    model_id = "fake"

    def encode(self, img: Image.Image, quality: int, downscale: int = 1, refine: int = 0) -> bytes:
        assert downscale == 1 and refine == 0
        return codecs_mod.Jpeg().encode(img, 20 * quality)

    def decode(self, data: bytes) -> Image.Image:
        return codecs_mod.Jpeg().decode(data)


def test_ours_is_loaded_lazily(
    image_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("codec")
    fake.load_model = _FakeModel
    monkeypatch.setitem(sys.modules, "codec", fake)
    result = run_rd(image_dir, "ours", out_json=tmp_path / "rd.json", progress=False)
    points = result["codecs"]["ours"]["points"]
    assert [p["quality"] for p in points] == [1, 2, 3]
    assert result["reference"]["csv"] == "evaluation/data/kodak_published_rd.csv"


def test_codec_settings_do_not_change_with_use() -> None:
    for cls in ANCHORS.values():
        codec = cls()
        before = codec.settings
        codec.encode(_image(32, 24), codec.qualities[0])
        assert codec.settings == before == cls().settings
