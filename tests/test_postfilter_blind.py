"""The artefact filter's blind strength estimator, self-ensemble and grown networks."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from postfilter import DEFAULT_WEIGHTS, PostFilter
from postfilter.calibrate import BLIND_POINTS, blind_scales
from postfilter.calibrate import main as calibrate
from postfilter.estimator import GRID, WINDOW, StrengthEstimator, estimate_window
from postfilter.holdout import main as holdout
from postfilter.model import ArtifactNet, FilterConfig
from postfilter.train import grow_from
from postfilter.train_estimator import initial_estimator
from postfilter.train_estimator import main as train_estimator
from postfilter.weights import export_weights, load_weights

from .conftest import smooth_image, write_photos


def tiny_filter(path, estimator: int = 0, blocks: int = 2):
    """A tiny filter with random (non-identity) weights, written to ``path``."""
    torch.manual_seed(0)
    net = ArtifactNet(FilterConfig(channels=8, blocks=blocks, estimator=estimator))
    torch.nn.init.normal_(net.tail.weight, std=0.05)
    export_weights(net, path, model_id="tiny")
    return path


def test_estimate_window_starts_on_the_grid():
    x = torch.arange(2000 * 1500, dtype=torch.float32).reshape(1, 1, 2000, 1500)
    win = estimate_window(x)
    y0, x0 = (2000 - WINDOW) // 2 // GRID * GRID, (1500 - WINDOW) // 2 // GRID * GRID
    assert torch.equal(win, x[..., y0 : y0 + WINDOW, x0 : x0 + WINDOW])
    assert estimate_window(torch.rand(1, 3, 3, 5)).shape == (1, 3, 4, 4)  # padded, cut to 4s
    assert StrengthEstimator(4)(estimate_window(torch.rand(2, 3, 30, 41))).shape == (2,)


def test_blind_is_told_the_estimate(tmp_path):
    pf = PostFilter(tiny_filter(tmp_path / "e.safetensors", estimator=4))
    rgb = smooth_image(40, 54, seed=2)
    qp = pf.estimate(rgb)
    assert qp is not None and 22 <= qp <= 47
    diff = pf(rgb).astype(int) - pf(rgb, qp).astype(int)
    assert np.abs(diff).max() <= 1
    assert PostFilter(tiny_filter(tmp_path / "n.safetensors")).estimate(rgb) is None


def test_ensemble_is_flip_equivariant(tmp_path):
    pf = PostFilter(tiny_filter(tmp_path / "f.safetensors"))
    rgb = smooth_image(38, 52, seed=4)
    for ensemble, axes in ((2, (1,)), (4, (0, 1))):  # left-right flips; and upside down
        out = pf(rgb, 37.0, ensemble=ensemble)
        for axis in axes:
            back = np.flip(
                pf(np.ascontiguousarray(np.flip(rgb, axis)), 37.0, ensemble=ensemble), axis
            )
            assert np.abs(back.astype(int) - out.astype(int)).max() <= 1
    out = pf(rgb, 37.0)
    assert not np.array_equal(pf(rgb, 37.0, ensemble=1), out)
    tiled = pf(rgb, 37.0, tile=16)
    assert np.abs(tiled.astype(int) - out.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="ensemble"):
        pf(rgb, 37.0, ensemble=3)


@pytest.mark.parametrize("channels", [8, 16])
def test_grown_filter_starts_as_the_small_one(tmp_path, channels):
    small = tiny_filter(tmp_path / "s.safetensors", blocks=1)
    net = ArtifactNet(FilterConfig(channels=channels, blocks=3))
    grow_from(net, small)
    src, _ = load_weights(small)
    x, cond = torch.rand(1, 3, 16, 20), torch.tensor([[0.2, 1.0]])
    assert torch.allclose(net(x, cond), src(x, cond), atol=1e-6)
    assert net.body[2].conv1.weight.any()  # the new blocks can learn
    assert channels == 8 or net.body[0].conv1.weight[8:].any()  # and the new channels
    for smaller in (FilterConfig(channels=8, blocks=0), FilterConfig(channels=4, blocks=3)):
        with pytest.raises(SystemExit):
            grow_from(ArtifactNet(smaller), small)


def test_estimator_training_resumes_and_attaches(tmp_path, capsys):
    rng = np.random.default_rng(0)
    orig = np.stack([smooth_image(32, 32, seed=i) for i in range(6)])
    qp = np.array([22, 27, 32, 37, 42, 47], np.float32)
    noise = rng.normal(size=orig.shape) * (qp[:, None, None, None] - 20) / 3
    dec = np.clip(orig + noise, 0, 255).astype(np.uint8)
    cache = tmp_path / "cache"
    cache.mkdir()
    for split in ("train", "val"):
        np.savez(cache / f"{split}.npz", orig=orig, dec=dec, qp=qp)
    export = tmp_path / "with-estimator.safetensors"
    args = [tiny_filter(tmp_path / "f.safetensors"), "--cache", cache, "--out", tmp_path / "run"]
    args += ["--channels", "4", "--batch", "2", "--patch", "16", "--log-every", "1"]
    args += ["--val-every", "2", "--ckpt-every", "2", "--export", export]
    assert train_estimator([str(a) for a in [*args, "--steps", "2"]]) == 0
    assert train_estimator([str(a) for a in [*args, "--steps", "3"]]) == 0
    assert "resumed from" in capsys.readouterr().out
    net, meta = load_weights(export)
    assert net.config.estimator == 4 and meta["model_id"] == "tiny"
    assert all(0 <= s <= 1 for s in meta["blind_scale"][1])
    with open(export.with_name("with-estimator.estimator_log.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows if r["val_mae"]] == ["2"]
    assert PostFilter(export).estimate(dec[0]) is not None


def test_shipped_filter_pixels_do_not_depend_on_threads():
    pf = PostFilter(DEFAULT_WEIGHTS)
    rgb = smooth_image(120, 90, seed=7)
    threads = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2):
            torch.set_num_threads(n)
            outs += [pf(rgb, 37.0), pf(rgb)]
    finally:
        torch.set_num_threads(threads)
    assert np.array_equal(outs[0], outs[2]) and np.array_equal(outs[1], outs[3])
    assert pf.estimate(rgb) is not None  # the shipped filter reads the QP in blind mode


def test_estimator_of_a_filter_that_has_one_is_replaced(tmp_path):
    orig = np.stack([smooth_image(32, 32, seed=i) for i in range(2)])
    cache = tmp_path / "cache"
    cache.mkdir()
    for split in ("train", "val"):
        np.savez(cache / f"{split}.npz", orig=orig, dec=orig, qp=np.array([22, 47], np.float32))
    export = tmp_path / "new.safetensors"
    args = [tiny_filter(tmp_path / "f.safetensors", estimator=4), "--cache", cache]
    args += ["--out", tmp_path / "run", "--channels", "2", "--batch", "2", "--patch", "16"]
    for objective, loss in (("qp", "relative"), ("filter", "relative"), ("filter", "relative-yuv")):
        run = [*args, "--objective", objective, "--loss", loss, "--val-every", "1"]
        run += ["--export", export]
        assert train_estimator([str(a) for a in [*run, "--steps", "1"]]) == 0
        assert load_weights(export)[0].config.estimator == 2
        (tmp_path / "run" / "ckpt.pt").unlink()


def test_estimator_starts_from_a_filter_files_estimator(tmp_path):
    with_estimator = tiny_filter(tmp_path / "e.safetensors", estimator=4)
    state = initial_estimator(with_estimator)
    saved = load_weights(with_estimator)[0].estimator.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in state.items())
    with pytest.raises(SystemExit, match="no strength estimator"):
        initial_estimator(tiny_filter(tmp_path / "f.safetensors"))


def test_holdout_compares_filters_on_caches(tmp_path, capsys):
    orig = np.stack([smooth_image(32, 32, seed=i) for i in range(2)])
    dec = np.clip(orig.astype(int) + 3, 0, 255).astype(np.uint8)
    cache = tmp_path / "cache"
    cache.mkdir()
    np.savez(cache / "val.npz", orig=orig, dec=dec, qp=np.array([37, 22], np.float32))
    out = tmp_path / "holdout.json"
    weights = [tiny_filter(tmp_path / "a.safetensors", estimator=4), DEFAULT_WEIGHTS]
    args = ["--cache", str(cache), "--weights", *map(str, weights), "-o", str(out)]
    assert holdout([*args, "--threads", "1"]) == 0
    rows = json.loads(out.read_text())
    assert [r["model_id"] for r in rows] == ["tiny", "hevc-artifacts-v6"]
    assert all(r["pairs"] == 2 and r["told_worst"] <= r["told_qp37"] for r in rows)
    assert holdout(["--cache", str(tmp_path / "none"), "--weights", str(weights[0])]) == 2
    assert capsys.readouterr().err.startswith("error:")


class FakePicture:
    """What :func:`blind_scales` needs of a picture: an estimate, a gain that peaks at scale
    ``best`` and turns into a loss beyond ``2 * best``, and the gain told its QP."""

    def __init__(self, estimate: float, best: float, told_gain: float = 0.1) -> None:
        self.estimate, self.best, self.told_gain = estimate, best, told_gain

    def gain(self, scale: float) -> float:
        return 0.5 * scale * (2 * self.best - scale)


def test_blind_scales_damp_where_the_estimate_misleads():
    pictures = [FakePicture(e, 1.0) for e in (30.0, 37.0) for _ in range(5)]
    pictures += [FakePicture(23.0, 0.8), FakePicture(30.0, 0.1)]  # the last one misleads
    table = blind_scales(pictures, max_loss_db=0.03)
    qps, scales = zip(*table, strict=True)
    assert qps == BLIND_POINTS
    for p in pictures:
        assert p.gain(float(np.interp(p.estimate, qps, scales))) >= -0.03
    assert np.interp(37.0, qps, scales) == 1.0  # nothing misleads there: full strength
    assert np.interp(30.0, qps, scales) <= 0.4
    pictures[-1].told_gain = -1.0  # it loses that much told: the others decide
    qps, scales = zip(*blind_scales(pictures, max_loss_db=0.03), strict=True)
    assert np.interp(30.0, qps, scales) > 0.4


def test_blind_scale_is_read_per_estimate(tmp_path):
    net = ArtifactNet(FilterConfig(channels=8, blocks=1, estimator=4))
    path = tmp_path / "t.safetensors"
    export_weights(net, path, "t", blind_scale=[(22.0, 0.2), (37.0, 1.0)])
    pf = PostFilter(path)
    scales = [pf.residual_scale(None, qp) for qp in (20.0, 29.5, 47.0)]
    assert scales == pytest.approx([0.2, 0.6, 1.0])
    export_weights(net, path, "t", blind_scale=0.8)  # one number, as files before the table
    assert PostFilter(path).residual_scale(None, 30.0) == 0.8


def test_calibration_on_whole_pictures_sets_the_blind_table(tmp_path, capsys):
    weights = tiny_filter(tmp_path / "e.safetensors", estimator=4)
    photos = write_photos(tmp_path / "photos", 2, 48, 64)
    out = tmp_path / "calibrated.safetensors"
    args = [weights, "--pictures", photos, "--heic-cache", tmp_path / "heic", "-o", out]
    assert calibrate([str(a) for a in args]) == 0
    assert "blind residual scale: 22.0:" in capsys.readouterr().out
    _, before = load_weights(weights)
    _, meta = load_weights(out)
    assert meta["residual_scale"] == before["residual_scale"]  # told scales kept
    assert meta["blind_scale"][0] == list(BLIND_POINTS)
    assert all(0 <= s <= 1 for s in meta["blind_scale"][1])
    with pytest.raises(SystemExit):  # nothing to calibrate on
        calibrate([str(weights), "-o", str(out)])
