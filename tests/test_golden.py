"""Files coded earlier, maybe on another machine, decode as they did there (tests/golden.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import codec
from cli.main import main
from codec.video import VideoCodec, iter_frames
from evaluation.metrics import psnr

from . import golden


def close_to(decoded: np.ndarray, expected_png) -> None:
    """``decoded`` equals the committed decode up to float rounding in the synthesis: no
    pixel off by more than 2 grey levels, almost all equal."""
    expected = np.asarray(Image.open(expected_png))
    assert decoded.shape == expected.shape
    diff = np.abs(decoded.astype(int) - expected)
    assert diff.max() <= 2 and np.mean(diff > 0) < 0.01


@pytest.fixture(scope="module")
def model() -> codec.Codec:
    return codec.load_model()


def test_golden_picture(model, capsys):
    data = golden.IMAGE.read_bytes()
    header, rgb = model.decode_array(data)
    assert (header.width, header.height, header.quality) == (192, 128, golden.QUALITY_IMAGE)
    close_to(rgb, golden.IMAGE_DECODED)
    source = np.asarray(Image.open(golden.SOURCE).convert("RGB"))
    assert psnr(source, rgb) > 25.0  # 25.6 dB; a desynchronised decoder gives noise
    assert main(["info", str(golden.IMAGE), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model_id"] == model.model_id and info["bytes"] == len(data)


def test_golden_clip(model, capsys):
    assert main(["info", str(golden.VIDEO), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [f["type"] for f in info["frames"]] == ["I", "P", "P"]
    video = VideoCodec.shipped(model)
    frames = list(iter_frames(golden.VIDEO, video))
    assert len(frames) == 3
    close_to(np.concatenate(frames, axis=0), golden.VIDEO_DECODED)
    for frame, source in zip(frames, golden.clip_frames(), strict=True):
        assert psnr(source, frame) > 24.5  # 25.3 to 26.2 dB
