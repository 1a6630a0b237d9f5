"""Low-rate mode: downscaled coding, the header flag, the UPSC section, super-resolution."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from bitstream import BitstreamError, pack, unpack
from bitstream.container import downscale_flag
from codec import Codec
from codec.lowrate import TAG_UPSCALER
from postfilter.restore import RestoreConfig, Restorer
from postfilter.weights import export_restorer

from .conftest import decode_with_threads, smooth_image


def _tiny_sr(path, scale: int, seed: int):
    torch.manual_seed(seed)
    net = Restorer(RestoreConfig(f"sr{scale}", channels=8, blocks=1))
    for p in net.parameters():  # the tail starts at zero: make the network do something
        torch.nn.init.normal_(p, std=0.05)
    export_restorer(net, path, model_id=f"tiny-sr{scale}")
    return path


@pytest.fixture(scope="module")
def sr_codec(tiny_weights, tmp_path_factory) -> Codec:
    d = tmp_path_factory.mktemp("sr")
    weights = {s: _tiny_sr(d / f"sr{s}.safetensors", s, seed=s) for s in (2, 4)}
    return Codec(tiny_weights, sr_weights=weights)


@pytest.mark.parametrize("factor", [2, 4])
@pytest.mark.parametrize("size", [(1, 1), (17, 33), (70, 90)])
def test_round_trip_keeps_the_size(sr_codec: Codec, factor: int, size):
    rgb = smooth_image(*size)
    data = sr_codec.encode(rgb, quality=3, downscale=factor)
    header, out = sr_codec.decode_array(data)
    assert header.downscale == factor
    assert (header.height, header.width) == size
    assert out.shape == (*size, 3) and out.dtype == np.uint8


def test_downscaled_file_is_smaller_and_named(sr_codec: Codec):
    rgb = smooth_image(128, 160)
    full, half = (sr_codec.encode(rgb, quality=5, downscale=f) for f in (1, 2))
    assert len(half) < len(full)
    header, sections = unpack(half)
    assert header.flags & downscale_flag(2)
    assert sections[TAG_UPSCALER] == sr_codec.upscaler(2).section()
    assert TAG_UPSCALER not in unpack(full)[1]


def test_decode_is_deterministic_across_threads(sr_codec: Codec):
    data = sr_codec.encode(smooth_image(96, 130), quality=4, downscale=2)
    one, two = (decode_with_threads(sr_codec, data, t) for t in (1, 2))
    assert np.array_equal(one, two)


def test_other_sr_network_is_refused(sr_codec: Codec, tiny_weights, tmp_path):
    data = sr_codec.encode(smooth_image(64, 64), quality=2, downscale=2)
    other = Codec(tiny_weights, sr_weights={2: _tiny_sr(tmp_path / "o.safetensors", 2, seed=9)})
    with pytest.raises(BitstreamError, match="super-resolution network"):
        other.decode_array(data)


def test_bad_factor(sr_codec: Codec):
    with pytest.raises(ValueError, match="downscale factor"):
        sr_codec.encode(smooth_image(32, 32), quality=2, downscale=3)


def test_invalid_factor_bits_are_rejected(sr_codec: Codec):
    header, sections = unpack(sr_codec.encode(smooth_image(32, 32), quality=2))
    bad = pack(replace(header, flags=header.flags | 0b110), list(sections.items()))  # x8
    with pytest.raises(BitstreamError, match="invalid downscale"):
        unpack(bad)


def test_target_bpp_falls_back_to_low_rate_mode(sr_codec: Codec):
    rgb = smooth_image(128, 160)
    pixels = 128 * 160
    smallest = len(sr_codec.encode(rgb, quality=1)) * 8 / pixels
    data = sr_codec.encode(rgb, target_bpp=0.9 * smallest)
    assert unpack(data)[0].downscale in (2, 4) and len(data) * 8 / pixels <= 0.9 * smallest
    with pytest.raises(ValueError, match="no quality"):
        sr_codec.encode(rgb, target_bpp=0.9 * smallest, downscale=1)
