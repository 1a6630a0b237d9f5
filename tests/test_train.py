"""Training smoke test: a tiny model's loss falls, the run resumes and exports."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from bitstream.container import unpack
from codec import Codec, ImportanceCodec, ModelConfig
from codec.average import average_models
from codec.average import main as average_main
from codec.errors import WeightsError
from codec.train import grow_synthesis
from codec.train import main as train
from codec.zoo import export_weights, load_model

from .conftest import smooth_image, write_photos


def test_training_loss_falls_and_run_resumes(tmp_path):
    data = write_photos(tmp_path / "photos", 5, 96, 128)
    run = tmp_path / "run"
    args = [
        str(data),
        "--out",
        str(run),
        "--batch",
        "4",
        "--crop",
        "64",
        "--n",
        "16",
        "--m",
        "32",
        "--nz",
        "16",
        "--levels",
        "8",
        "--holdout",
        "1",
        "--lr",
        "2e-3",
        "--log-every",
        "5",
        "--val-every",
        "40",
        "--ckpt-every",
        "20",
        "--threads",
        "1",
    ]
    train([*args, "--steps", "40"])
    train([*args, "--steps", "80"])  # resumes at step 40
    with open(run / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    assert steps == list(range(5, 85, 5))
    loss = np.array([float(r["loss"]) for r in rows])
    assert loss[-4:].mean() < 0.5 * loss[:4].mean()
    codec = Codec(run / "model.safetensors")
    img = Image.fromarray(smooth_image(64, 64))
    assert codec.decode(codec.encode(img, quality=2)).size == (64, 64)


def test_encoder_only_training_leaves_the_decoder_alone(tmp_path):
    data = write_photos(tmp_path / "photos", 3, 96, 128)
    net = ImportanceCodec(ModelConfig(n=16, m=32, nz=16, nh=16, levels=8))
    export_weights(net, tmp_path / "init.safetensors")
    run = tmp_path / "run"
    args = ["--out", str(run), "--init", str(tmp_path / "init.safetensors")]
    args += ["--batch", "2", "--crop", "64", "--holdout", "1", "--threads", "1"]
    train([str(data), *args, "--steps", "6", "--ckpt-every", "3", "--train-only", "encoder"])
    trained = load_model(run / "model.safetensors").state_dict()
    changed = {k for k, v in net.state_dict().items() if not torch.equal(v, trained[k])}
    assert changed and all(k.startswith("g_a.") or k == "importance_offset" for k in changed)
    assert any(k.startswith("g_a.") for k in changed)


def test_grown_synthesis_decodes_as_before_and_decoder_training_keeps_the_files(tmp_path):
    """Blocks added to the synthesis start as the identity; a decoder-only run then changes
    the synthesis alone, so the grown model writes the same bytes and decodes them better."""
    data = write_photos(tmp_path / "photos", 3, 96, 128)
    net = ImportanceCodec(ModelConfig(n=16, m=32, nz=16, nh=16, levels=8)).eval()
    export_weights(net, tmp_path / "init.safetensors")
    grown = grow_synthesis(net, (1, 0, 2)).eval()
    assert grown.config.synthesis_blocks == (1, 0, 2)
    y = torch.randn(1, 32, 4, 4)
    quality = torch.tensor([3])
    with torch.no_grad():
        assert torch.equal(grown.synthesize(y, quality), net.synthesize(y, quality))
    with pytest.raises(SystemExit, match="drop trained blocks"):
        grow_synthesis(grown, (0, 0, 2))
    with pytest.raises(SystemExit):  # decoder-only needs the model whose files it decodes
        train([str(data), "--out", str(tmp_path / "bad"), "--train-only", "decoder"])
    with pytest.raises(SystemExit):  # one count per upsampling stage
        train([str(data), "--out", str(tmp_path / "bad"), "--synthesis-blocks", "2,2"])

    run = tmp_path / "run"
    args = ["--out", str(run), "--init", str(tmp_path / "init.safetensors"), "--lr", "3e-3"]
    args += ["--batch", "2", "--crop", "64", "--holdout", "1", "--threads", "1"]
    args += ["--synthesis-blocks", "1,0,2", "--train-only", "decoder", "--log-every", "4"]
    train([str(data), *args, "--steps", "8", "--ckpt-every", "4"])
    train([str(data), *args, "--steps", "40", "--ckpt-every", "4"])  # resumes the grown model
    trained = load_model(run / "model.safetensors")
    assert trained.config.synthesis_blocks == (1, 0, 2)
    changed = {
        k for k, v in grown.state_dict().items() if not torch.equal(v, trained.state_dict()[k])
    }
    assert changed and all(k.startswith("g_s.") for k in changed)
    assert "g_s.8.conv2.weight" in changed  # an added block trained
    with open(run / "train_log.csv") as f:
        psnr = [float(r["psnr"]) for r in csv.DictReader(f)]
    assert np.mean(psnr[-3:]) > np.mean(psnr[:3])
    img = Image.fromarray(smooth_image(64, 64))
    before, after = Codec(tmp_path / "init.safetensors"), Codec(run / "model.safetensors")
    blob = after.encode(img, quality=4)
    old_header, old_sections = unpack(before.encode(img, quality=4))
    header, sections = unpack(blob)
    assert sections == old_sections  # the same coded symbols; the header names the new model
    assert header.digest != old_header.digest and after.decode(blob).size == (64, 64)


def test_average_of_models_is_their_parameter_mean_and_codes(tmp_path):
    config = ModelConfig(n=16, m=32, nz=16, nh=16, levels=8)
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        paths.append(tmp_path / f"m{seed}.safetensors")
        export_weights(ImportanceCodec(config), paths[-1])
    out = tmp_path / "soup.safetensors"
    average_main([*map(str, paths), "-o", str(out), "--model-id", "soup"])
    a, b = (load_model(p).state_dict() for p in paths)
    soup = load_model(out).state_dict()
    assert torch.allclose(soup["g_a.1.weight"], (a["g_a.1.weight"] + b["g_a.1.weight"]) / 2)
    assert not torch.equal(soup["g_a.1.weight"], a["g_a.1.weight"])
    codec = Codec(out)
    assert codec.model_id == "soup"
    img = Image.fromarray(smooth_image(48, 40))
    assert codec.decode(codec.encode(img, quality=3)).size == (40, 48)


def test_average_refuses_models_of_different_architectures(tmp_path):
    for name, m in (("a", 32), ("b", 64)):
        export_weights(
            ImportanceCodec(ModelConfig(n=16, m=m, nz=16, nh=16, levels=8)),
            tmp_path / f"{name}.safetensors",
        )
    with pytest.raises(WeightsError, match="architecture"):
        average_models([tmp_path / "a.safetensors", tmp_path / "b.safetensors"])


def test_average_cli_reports_missing_weights_in_one_line(tmp_path):
    out = tmp_path / "soup.safetensors"
    with pytest.raises(SystemExit, match="^error: model weights not found"):
        average_main(
            [str(tmp_path / "a.safetensors"), str(tmp_path / "b.safetensors"), "-o", str(out)]
        )
    assert not out.exists()


def test_log_left_empty_by_a_stopped_run_gets_its_header(tmp_path):
    """A run stopped before its first row leaves an empty log; the resumed run heads it."""
    from codec.training import csv_log

    path = tmp_path / "val_log.csv"
    path.touch()
    writer, f = csv_log(path, ["step", "loss"])
    writer.writerow([500, 0.25])
    f.close()
    writer, f = csv_log(path, ["step", "loss"])  # resumed again: no second header
    writer.writerow([1000, 0.2])
    f.close()
    assert path.read_text().splitlines() == ["step,loss", "500,0.25", "1000,0.2"]
