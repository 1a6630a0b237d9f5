"""The shipped default model: it loads without pickle, codes a picture well, deterministically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import codec
from codec.zoo import DEFAULT_WEIGHTS

from .conftest import decode_with_threads, smooth_image

PHOTO = Path(__file__).parent / "data" / "postfilter_wiki_003_crop.png"


@pytest.fixture(scope="module")
def model() -> codec.Codec:
    return codec.load_model()


def test_default_weights_are_shipped():
    assert DEFAULT_WEIGHTS.is_file()
    assert DEFAULT_WEIGHTS.stat().st_size < 16 * 2**20


def test_quality_rises_with_rate(model):
    img = smooth_image(128, 160, seed=7)
    results = []
    for q in (1, model.qualities):
        data = model.encode(img, quality=q)
        out = np.asarray(model.decode(data), dtype=np.float64)
        psnr = 10 * np.log10(255**2 / np.mean((out - img) ** 2))
        results.append((len(data), psnr))
    (small, low), (big, high) = results
    assert small < big and low < high
    assert high > 25.0  # a trained model, not random weights (those give about 10 dB)


def test_module_api_round_trip(tmp_path):
    img = smooth_image(40, 24)
    out = codec.decode(codec.encode(img, quality=3))
    assert out.size == (24, 40)


@pytest.mark.parametrize("quality", [1, 5, 8])
def test_decode_same_pixels_one_and_two_threads(model, quality):
    for img in (smooth_image(290, 200, seed=1), Image.open(PHOTO).convert("RGB")):
        data = model.encode(img, quality=quality)
        one = decode_with_threads(model, data, 1)
        two = decode_with_threads(model, data, 2)
        assert np.array_equal(one, two)


@pytest.mark.parametrize("factor", [2, 4])
def test_low_rate_mode_with_shipped_networks(model, factor):
    img = np.asarray(Image.open(PHOTO).convert("RGB"))
    data = model.encode(img, quality=4, downscale=factor)
    assert len(data) < len(model.encode(img, quality=4))
    one = decode_with_threads(model, data, 1)
    two = decode_with_threads(model, data, 2)
    assert one.shape == img.shape and np.array_equal(one, two)
    psnr = 10 * np.log10(255**2 / np.mean((one.astype(float) - img) ** 2))
    assert psnr > {2: 21.5, 4: 18.5}[factor]  # 22.4 and 19.4 dB when written; gross errors fall far


def test_shipped_p_frame_model_codes_a_moving_clip(tmp_path):
    from codec.inter_weights import DEFAULT_INTER_WEIGHTS
    from codec.video import VideoCodec, encode_video, iter_frames, scan_video

    from .test_video import frames_of, write_clip

    assert DEFAULT_INTER_WEIGHTS.is_file()
    assert DEFAULT_INTER_WEIGHTS.stat().st_size < 16 * 2**20
    src, dst = tmp_path / "in.mkv", tmp_path / "a.lcv"
    frames = frames_of(4, 64, 96)  # a smooth picture panning 2 pixels a frame
    write_clip(src, frames)
    shipped = VideoCodec.shipped()
    forced = VideoCodec(shipped.image, shipped.inter, choose_intra=False)
    summary = encode_video(src, dst, quality=4, gop=8, codec=forced)
    assert "".join(f.type for f in summary.frames) == "IPPP"
    assert scan_video(dst).header.inter_id == "lcodec-inter-v6"
    decoded = list(iter_frames(dst, shipped))
    for a, b in zip(decoded, frames, strict=True):  # trained: random weights give ~10 dB
        assert 10 * np.log10(255**2 / np.mean((a.astype(float) - b) ** 2)) > 28
    assert encode_video(src, dst, quality=4, gop=8).frames[0].type == "I"  # the default path
