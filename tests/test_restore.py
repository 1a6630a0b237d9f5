"""Restoration networks: the runner and PIL API with tiny random networks, the CLI
(``enhance --task denoise|sr|deblur``, ``decode --enhance``), training, and the shipped weights.
"""

from __future__ import annotations

import contextlib
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cli.main import main
from codec.determinism import one_thread
from evaluation.metrics import psnr
from postfilter import PostFilterError, deblur, denoise, restore_benchmark, super_resolve
from postfilter.restore import (
    TASKS,
    RestoreConfig,
    Restorer,
    add_noise,
    bicubic_downscale,
    gaussian_blur,
    psnr_y,
)
from postfilter.restore_api import RestoreRunner
from postfilter.restore_benchmark import main as benchmark
from postfilter.restore_benchmark import wiener_deblur
from postfilter.restore_train import main as train
from postfilter.weights import RESTORE_WEIGHTS, export_restorer, load_restorer

from .conftest import smooth_image, write_photos

DATA = Path(__file__).parent / "data"
CONDITIONS = {"denoise": (25.0, None), "sr2": (None, None), "sr4": (None, None), "deblur": (5, 1.5)}


def _tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None] / 255.0


def _uint8(x: torch.Tensor) -> np.ndarray:
    return (x[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, str]:
    """Weights files of tiny random (non-identity) networks, by task."""
    d = tmp_path_factory.mktemp("restore")
    paths = {}
    for i, task in enumerate(TASKS):
        torch.manual_seed(i)
        net = Restorer(RestoreConfig(task, channels=8, blocks=1))
        torch.nn.init.normal_(net.net.tail.weight, std=0.05)  # the tail starts at zero
        paths[task] = str(d / f"{task}.safetensors")
        export_restorer(net, paths[task], model_id=f"tiny-{task}")
    return paths


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("size", [(1, 1), (17, 33)])
def test_shapes_and_determinism(tiny, task, size):
    runner = RestoreRunner(tiny[task])
    rgb = smooth_image(*size)
    out = runner(rgb, *CONDITIONS[task])
    s = runner.scale
    assert out.shape == (size[0] * s, size[1] * s, 3) and out.dtype == np.uint8
    assert np.array_equal(out, runner(rgb, *CONDITIONS[task]))


@pytest.mark.parametrize("task", TASKS)
def test_tiles_match_untiled(tiny, task):
    runner = RestoreRunner(tiny[task])
    rgb, c = smooth_image(45, 61, seed=2), CONDITIONS[task]
    # equal up to float rounding, natively and with oneDNN; and the float path agrees
    for convolutions in (one_thread, contextlib.nullcontext):
        with convolutions():
            tiled, whole = runner(rgb, *c, tile=16), runner(rgb, *c)
            floats = _uint8(runner.restore(_tensor(rgb), *c, tile=16))
        for out in (tiled, floats):
            assert np.abs(out.astype(int) - whole).max() <= 1


def test_conditions_matter_and_blind_mode(tiny):
    rgb = smooth_image(32, 40)
    den, blur = RestoreRunner(tiny["denoise"]), RestoreRunner(tiny["deblur"])
    assert not np.array_equal(den(rgb, 5.0), den(rgb, 45.0))
    assert not np.array_equal(blur(rgb, 0.0, 1.0), blur(rgb, 0.0, 2.5))
    sigma = den.estimate_sigma(rgb)
    assert 0 <= sigma <= 50
    assert np.array_equal(den(rgb), den(rgb, sigma))
    assert den(rgb[:1, :1]).shape == (1, 1, 3)


def test_pil_api_keeps_mode_and_alpha(tiny):
    rgba = Image.fromarray(smooth_image(20, 30)).convert("RGBA")
    gray = rgba.convert("L")
    out = super_resolve(rgba, 2, weights=tiny["sr2"])
    assert out.mode == "RGBA" and out.size == (60, 40)
    assert denoise(gray, weights=tiny["denoise"]).mode == "L"
    out = deblur(gray.convert("LA"), 2.0, sigma=3.0, weights=tiny["deblur"])
    assert out.mode == "LA" and out.size == (30, 20)
    assert np.array_equal(np.asarray(out)[..., 1], np.asarray(rgba)[..., 3])


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t, im: denoise(im, -1, weights=t["denoise"]), "sigma must be between 0 and 50"),
        (lambda t, im: denoise(im, 51, weights=t["denoise"]), "sigma must be between 0 and 50"),
        (lambda t, im: deblur(im, 0.2, weights=t["deblur"]), "blur sigma must be between"),
        (lambda t, im: deblur(im, 4.0, weights=t["deblur"]), "blur sigma must be between"),
        (lambda t, im: deblur(im, 1.0, 30, weights=t["deblur"]), "between 0 and 25"),
        (lambda t, im: super_resolve(im, 3, weights=t["sr2"]), "scale must be 2 or 4"),
        (lambda t, im: RestoreRunner(t["sr2"])(np.asarray(im), 10.0), "takes no noise"),
        (lambda t, im: RestoreRunner(t["denoise"])(np.asarray(im), tile=7), "tile size"),
    ],
)
def test_argument_validation(tiny, call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny, Image.fromarray(smooth_image(8, 8)))


def test_weights_of_another_task_are_refused(tiny):
    with pytest.raises(PostFilterError, match="holds a denoise network"):
        super_resolve(Image.new("RGB", (4, 4)), 2, weights=tiny["denoise"])


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(smooth_image(24, 34)).save(path)
    return path


@pytest.mark.parametrize(
    "task, extra, size",
    [
        ("denoise", [], (34, 24)),
        ("denoise", ["--sigma", "15"], (34, 24)),
        ("sr", ["--scale", "4"], (136, 96)),
        ("deblur", ["--blur-sigma", "1.5", "--sigma", "2"], (34, 24)),
    ],
)
def test_cli_round_trip(tiny, png, capsys, task, extra, size):
    out = png.with_name("out.png")
    weights = tiny[f"sr{extra[1]}" if task == "sr" else task]
    code, stdout, _ = run(
        ["enhance", png, "-o", out, "--task", task, *extra, "--weights", weights], capsys
    )
    assert code == 0 and "tiny-" in stdout
    assert Image.open(out).size == size


@pytest.mark.parametrize(
    "args",
    [
        ["in.png", "--task", "blur"],
        ["in.png", "--task", "sr", "--scale", "3"],
        ["in.png", "--task", "sr"],
        ["in.png", "--task", "denoise", "--sigma", "-1"],
        ["in.png", "--task", "denoise", "--sigma", "60"],
        ["in.png", "--task", "denoise", "--scale", "2"],
        ["in.png", "--task", "deblur"],
        ["in.png", "--task", "deblur", "--blur-sigma", "9"],
        ["in.png", "--task", "artifacts", "--sigma", "5"],
        ["bad.png", "--task", "denoise"],
        ["missing.png", "--task", "denoise"],
        ["in.mp4", "--task", "denoise"],
        ["in.png", "--task", "sr", "--scale", "2", "--weights", "WRONG"],
        ["in.png", "--task", "denoise", "--weights", "in.png"],
    ],
)
def test_cli_errors(tiny, png, capsys, args):
    d = png.parent
    (d / "bad.png").write_bytes(b"\x00not a picture" * 10)
    (d / "in.mp4").write_bytes(b"\x00not a video" * 10)
    argv = [d / a if "." in a else a for a in args]
    if "--weights" not in args:
        argv += ["--weights", tiny["denoise"]]
    argv = [tiny["denoise"] if a == "WRONG" else a for a in argv]
    before = set(d.iterdir())
    code, _, err = run(["enhance", argv[0], "-o", d / "out.png", *argv[1:]], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("error:"), err
    assert set(d.iterdir()) == before  # no output, no temporary file


def test_decode_enhance(tiny, tiny_weights, png, capsys):
    lcf, out = png.with_suffix(".lcf"), png.with_name("dec.png")
    assert run(["--model", tiny_weights, "encode", png, "-o", lcf], capsys)[0] == 0
    dec = ["--model", tiny_weights, "decode", lcf, "-o", out]
    assert run([*dec, "--enhance", "sr2", "--enhance-weights", tiny["sr2"]], capsys)[0] == 0
    assert Image.open(out).size == (68, 48)
    out.unlink()
    for bad in (
        ["--enhance", "deblur", "--enhance-weights", tiny["deblur"]],  # needs --blur-sigma
        ["--enhance", "denoise", "--sigma", "-3", "--enhance-weights", tiny["denoise"]],
        ["--enhance", "sr4", "--enhance-weights", tiny["sr2"]],
        ["--sigma", "10"],
    ):
        code, _, err = run([*dec, *bad], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error:")
        assert not out.exists()
    code = run([*dec, "--enhance", "denoise", "--enhance-weights", tiny["denoise"]], capsys)[0]
    assert code == 0 and Image.open(out).size == (34, 24)


def test_training_resumes_and_exports(tmp_path, capsys):
    photos = write_photos(tmp_path / "photos", 3, 196, 200)
    run_dir, export = tmp_path / "run", tmp_path / "denoise.safetensors"
    args = [photos, "--task", "denoise", "--out", run_dir, "--holdout-every", "3"]
    args += ["--channels", "8", "--blocks", "1", "--batch", "2", "--patch", "32"]
    args += ["--log-every", "2", "--val-every", "2", "--ckpt-every", "2"]
    args += ["--no-bf16", "--export", export]
    assert train([str(a) for a in [*args, "--steps", "2"]]) == 0
    assert train([str(a) for a in [*args, "--steps", "4"]]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert torch.load(run_dir / "ckpt.pt", weights_only=True)["step"] == 4
    net, meta = load_restorer(export)
    assert net.config == RestoreConfig("denoise", channels=8, blocks=1) and meta["model_id"]
    with open(export.with_name("denoise.train_log.csv")) as f:
        assert any(row["step"] == "4" for row in csv.DictReader(f))


def test_wiener_baseline_inverts_a_noise_free_blur(monkeypatch):
    """With a negligible noise-to-signal ratio the Wiener filter is the exact inverse, borders
    included (the mirrored periodic extension matches the blur's reflected borders)."""
    rgb = smooth_image(40, 52)
    y = gaussian_blur(_tensor(rgb), 1.0)
    assert psnr(rgb, _uint8(wiener_deblur(y, 1.0, 0.0))) > psnr(rgb, _uint8(y)) + 3
    monkeypatch.setattr(restore_benchmark, "WIENER_NOISE_FLOOR", 1e-4)
    assert np.array_equal(_uint8(wiener_deblur(y, 1.0, 0.0)), rgb)


def test_benchmark_on_tiny_sets(tiny, tmp_path):
    data, weights = tmp_path / "data", tmp_path / "weights"
    for i, name in enumerate(["CBSD68", "McMaster", "Set5", "Set14"]):
        (data / name).mkdir(parents=True)
        Image.fromarray(smooth_image(24, 36, seed=i)).save(data / name / "a.png")
    weights.mkdir()
    for task in ("denoise", "sr2", "deblur"):  # sr4 missing: skipped
        shutil.copy(tiny[task], weights / f"{task}-v1.safetensors")
    out = tmp_path / "r.json"
    args = ["--data", data, "-o", out, "--weights-dir", weights, "--repeats", "1", "--threads", "1"]
    assert benchmark([str(a) for a in args]) == 0
    result = json.loads(out.read_text())
    assert set(result["skipped"]) == {"sr4"}
    assert len(result["results"]) == 6 + 2 + 6  # denoise, sr2 on two sets, deblur
    assert result["results"]["denoise CBSD68 sigma 25"]["n"] == 1
    assert "denoise_768x512_s" in result["speed"]


def _crop() -> np.ndarray:
    return np.asarray(Image.open(DATA / "postfilter_wiki_003_crop.png").convert("RGB"))


@pytest.mark.skipif(not RESTORE_WEIGHTS["denoise"].is_file(), reason="no shipped denoise weights")
def test_shipped_denoiser_removes_noise():
    ref = _crop()
    x = add_noise(_tensor(ref), torch.tensor([25.0]), torch.Generator().manual_seed(0))
    noisy = _uint8(x)  # a saved noisy picture: clipped and rounded
    base = psnr(ref, noisy)
    assert psnr(ref, np.asarray(denoise(Image.fromarray(noisy), 25))) > base + 5
    assert psnr(ref, np.asarray(denoise(Image.fromarray(noisy)))) > base + 5


@pytest.mark.skipif(not RESTORE_WEIGHTS["sr2"].is_file(), reason="no shipped sr2 weights")
def test_shipped_sr2_beats_bicubic():
    ref = _crop()
    low = Image.fromarray(bicubic_downscale(ref, 2))
    bicubic = np.asarray(low.resize((ref.shape[1], ref.shape[0]), Image.Resampling.BICUBIC))
    ours = np.asarray(super_resolve(low, 2))
    assert psnr_y(ref, ours, 2) > psnr_y(ref, bicubic, 2) + 0.5
