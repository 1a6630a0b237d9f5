"""Training smoke test: a tiny model's loss falls, the run resumes and exports."""

from __future__ import annotations

import csv

import numpy as np
from PIL import Image

from codec import Codec
from codec.train import main as train

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
