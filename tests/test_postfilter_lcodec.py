"""The post-filter of our own codec's decodes, with tiny random networks: the condition kind in
weights files, the pair builder, ``lcodec decode --enhance artifacts`` and its Python API,
the refusals, and the Kodak benchmark's mechanics."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from cli.main import main
from codec.determinism import one_thread
from postfilter import PostFilter, PostFilterError, benchmark_lcodec, data, decode_enhanced, enhance
from postfilter.model import ArtifactNet, FilterConfig, qp_conditions
from postfilter.train import main as train
from postfilter.weights import export_weights, load_weights

from .conftest import smooth_image, write_photos

FLAT = (200, 40, 90)  # the colour of the held-out photo in the pair-builder test


@pytest.fixture(scope="module")
def tiny_filters(tmp_path_factory) -> dict[str, Path]:
    """Weights of tiny filters of both condition kinds, with random (non-identity) weights."""
    folder = tmp_path_factory.mktemp("pf")
    paths = {}
    for kind in ("qp", "quality"):
        torch.manual_seed(0)
        net = ArtifactNet(FilterConfig(channels=8, blocks=2, condition=kind))
        torch.nn.init.normal_(net.tail.weight, std=0.05)
        paths[kind] = folder / f"{kind}.safetensors"
        export_weights(net, paths[kind], model_id=f"tiny-{kind}")
    return paths


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_condition_kind_round_trips(tiny_filters):
    for kind, path in tiny_filters.items():
        assert load_weights(path)[0].config.condition == kind
        assert PostFilter(path).condition == kind


def test_config_without_condition_is_hevc(tiny_filters, tmp_path):
    assert FilterConfig.from_dict({"channels": 8, "blocks": 2}) == FilterConfig(8, 2, "qp")
    with safe_open(str(tiny_filters["quality"]), framework="pt") as f:
        meta = f.metadata()
    old = tmp_path / "old.safetensors"  # as written before the field existed
    meta["config"] = json.dumps({"channels": 8, "blocks": 2})
    save_file(load_file(str(tiny_filters["quality"])), str(old), metadata=meta)
    assert load_weights(old)[0].config.condition == "qp"
    with pytest.raises(ValueError):
        FilterConfig(condition="sigma")


def test_conditions_are_normalised_per_kind(tiny_filters):
    told = qp_conditions(torch.tensor([1.0, 4.5, 8.0]), kind="quality")
    assert told.tolist() == [[-1, 1], [0, 1], [1, 1]]
    assert qp_conditions(torch.tensor([22.0, 47.0]))[:, 0].tolist() == [-1, 1]
    pf, rgb = PostFilter(tiny_filters["quality"]), smooth_image(40, 52)
    assert not np.array_equal(pf(rgb, 1), pf(rgb, 8))
    assert np.array_equal(pf(rgb, 12), pf(rgb, 8))  # clamped to the trained range


def test_lcodec_pairs_hold_out_photos(tmp_path, tiny_weights, tiny_codec):
    photos, cache = tmp_path / "photos", tmp_path / "cache"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(smooth_image(72, 80, seed=i)).save(photos / f"p{i}.png")
    Image.new("RGB", (80, 72), FLAT).save(photos / "p2.png")  # the third photo validates
    args = dict(crops_per_image=2, crop=32, val_every=3, codec_weights=tiny_weights)
    data.build_lcodec(photos, cache, **args)
    train, val = data.load(cache, "train"), data.load(cache, "val")
    assert train["orig"].shape == train["dec"].shape == (4, 32, 32, 3)
    assert train["dec"].dtype == np.uint8 and set(train["qp"]) <= set(range(1, 9))
    assert sorted(val["qp"]) == sorted(list(range(1, 9)) * data.VAL_CROPS)
    assert (val["orig"] == FLAT).all()
    assert not (train["orig"] == FLAT).all(axis=(1, 2, 3)).any()
    for orig, dec, q in zip(val["orig"][:2], val["dec"][:2], val["qp"][:2], strict=True):
        assert np.array_equal(
            tiny_codec.decode_array(tiny_codec.encode(orig, quality=int(q)))[1], dec
        )
    stamp = (cache / "settings.json").stat().st_mtime_ns
    data.build_lcodec(photos, cache, **args)  # cached: not rebuilt
    assert (cache / "settings.json").stat().st_mtime_ns == stamp
    Image.new("RGB", (80, 72)).save(photos / "kodim01.png")
    with pytest.raises(ValueError, match="Kodak"):
        data.build_lcodec(photos, tmp_path / "cache2", **args)


def test_training_on_lcodec_pairs(tmp_path, tiny_weights, capsys):
    photos = write_photos(tmp_path / "photos", 2, 64, 72)
    export = tmp_path / "pf.safetensors"
    args = [
        photos,
        "--source",
        "lcodec",
        "--codec-weights",
        tiny_weights,
        "--out",
        tmp_path / "run",
    ]
    args += ["--cache", tmp_path / "cache", "--crops-per-image", "2", "--crop", "32"]
    args += ["--holdout-every", "2", "--channels", "8", "--blocks", "1", "--batch", "2"]
    args += ["--patch", "16", "--log-every", "2", "--val-every", "2", "--steps", "2"]
    assert train([str(a) for a in [*args, "--no-bf16", "--export", export]]) == 0
    assert "per quality level" in capsys.readouterr().out
    net, meta = load_weights(export)
    assert net.config == FilterConfig(8, 1, "quality") and meta["model_id"] == "lcodec-artifacts-v1"
    assert meta["residual_scale"][0] == list(range(1, 9))  # calibrated per quality level
    with open(export.with_name("pf.train_log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert rows[-1]["val_gain_q8_db"] and "val_gain_qp37_db" not in rows[0]


@pytest.fixture
def lcf(tmp_path, tiny_weights, capsys) -> Path:
    png, lcf = tmp_path / "in.png", tmp_path / "in.lcf"
    Image.fromarray(smooth_image(90, 134)).save(png)
    assert run(["--model", tiny_weights, "encode", png, "-o", lcf, "-q", "3"], capsys)[0] == 0
    return lcf


def test_decode_enhance_artifacts(lcf, tiny_weights, tiny_codec, tiny_filters, capsys):
    outs, threads = [], torch.get_num_threads()
    try:
        for n in (1, 2):
            out = lcf.with_name(f"dec{n}.png")
            args = ["--model", tiny_weights, "--threads", n, "decode", lcf, "-o", out]
            args += ["--enhance", "artifacts", "--enhance-weights", tiny_filters["quality"]]
            assert run(args, capsys)[0] == 0
            outs.append(np.asarray(Image.open(out)))
    finally:
        torch.set_num_threads(threads)
    assert outs[0].shape == (90, 134, 3) and np.array_equal(outs[0], outs[1])
    data = lcf.read_bytes()
    plain = tiny_codec.decode_array(data)[1]
    with one_thread():
        # told quality 3, without the self-ensemble (the native path's default), default tiles
        expected = PostFilter(tiny_filters["quality"])(plain, 3, ensemble=1)
    assert np.array_equal(outs[0], expected) and not np.array_equal(outs[0], plain)
    api = decode_enhanced(data, model=tiny_codec, weights=tiny_filters["quality"])
    assert np.array_equal(np.asarray(api), outs[0])


def test_grayscale_stays_grayscale(tmp_path, tiny_codec, tiny_filters):
    data = tiny_codec.encode(Image.fromarray(smooth_image(40, 48)[..., 0]), quality=5)
    out = decode_enhanced(data, model=tiny_codec, weights=tiny_filters["quality"])
    assert out.mode == "L" and out.size == (48, 40)


@pytest.mark.parametrize("case", ["hevc weights", "missing", "not weights", "downscaled", "sigma"])
def test_decode_enhance_artifacts_errors(lcf, tiny_weights, tiny_filters, capsys, case):
    src, extra = lcf, []
    weights = {"hevc weights": tiny_filters["qp"], "missing": "none.safetensors"}
    weights = weights.get(case, lcf if case == "not weights" else tiny_filters["quality"])
    if case == "downscaled":
        src = lcf.with_name("small.lcf")
        args = ["--model", tiny_weights, "encode", lcf.with_name("in.png"), "-o", src]
        assert run([*args, "--downscale", "2"], capsys)[0] == 0
    if case == "sigma":
        extra = ["--sigma", "5"]
    before = set(lcf.parent.iterdir())
    args = ["--model", tiny_weights, "decode", src, "-o", lcf.with_name("out.png")]
    code, _, err = run(
        [*args, "--enhance", "artifacts", "--enhance-weights", weights, *extra], capsys
    )
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
    assert set(lcf.parent.iterdir()) == before  # no output, no temporary file


def test_lcodec_weights_refused_for_hevc_decodes(tmp_path, tiny_filters, capsys):
    png = tmp_path / "in.png"
    Image.fromarray(smooth_image(32, 40)).save(png)
    with pytest.raises(PostFilterError, match="HEVC"):
        enhance(Image.open(png), qp=37, weights=tiny_filters["quality"])
    args = ["enhance", png, "-o", tmp_path / "out.png", "--weights", tiny_filters["quality"]]
    code, _, err = run(args, capsys)
    assert code == 2 and err.startswith("error:") and not (tmp_path / "out.png").exists()


def test_benchmark(tmp_path, tiny_weights, tiny_filters, capsys):
    kodak = write_photos(tmp_path / "kodak", 2, 48, 64, name="kodim{n:02d}.png")
    out = tmp_path / "bench.json"
    args = ["--kodak", kodak, "-o", out, "--weights", tiny_filters["quality"], "--threads", "1"]
    args += ["--codec-weights", tiny_weights, "--qualities", "2,5,8"]
    threads = torch.get_num_threads()
    try:
        assert benchmark_lcodec.main([str(a) for a in args]) == 0
    finally:
        torch.set_num_threads(threads)
    result = json.loads(out.read_text())
    assert [s["quality"] for s in result["per_quality"]] == [2, 5, 8]
    assert len(result["per_image"]) == 6 and set(result["bd_vs_lcodec"]) == {"told", "blind"}
    assert "BD-rate told" in capsys.readouterr().out
