"""Round trips, determinism, odd sizes and colour modes through the Python API."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

import codec.coder as coder
from bitstream import BitstreamError, unpack
from bitstream.container import pack
from codec import Codec, ImageError

from .conftest import decode_with_threads, smooth_image


def test_round_trip_shape_and_mode(tiny_codec: Codec, photo):
    data = tiny_codec.encode(photo, quality=3)
    out = tiny_codec.decode(data)
    assert out.size == photo.size and out.mode == "RGB"
    header, _ = unpack(data)
    assert (header.width, header.height, header.quality) == (90, 70, 3)


def test_encoding_is_deterministic(tiny_codec: Codec, photo):
    assert tiny_codec.encode(photo, quality=2) == tiny_codec.encode(photo, quality=2)


def test_decode_identical_for_one_and_two_threads(tiny_codec: Codec):
    data = tiny_codec.encode(smooth_image(300, 200, seed=3), quality=4)
    one = decode_with_threads(tiny_codec, data, 1)
    two = decode_with_threads(tiny_codec, data, 2)
    assert np.array_equal(one, two)


def test_bands_leave_no_seams(tiny_codec: Codec, monkeypatch):
    """Tiled synthesis matches synthesis of the whole latent at once."""
    data = tiny_codec.encode(smooth_image(600, 1300, seed=4), quality=5)
    banded = tiny_codec.decode_array(data)[1].astype(int)
    monkeypatch.setattr(coder, "BAND_ROWS", 10_000)
    monkeypatch.setattr(coder, "TILE_COLS", 10_000)
    whole = tiny_codec.decode_array(data)[1].astype(int)
    assert np.abs(banded - whole).max() <= 1
    assert (banded != whole).mean() < 1e-3


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (33, 17), (3, 65)])
def test_odd_sizes(tiny_codec: Codec, size):
    w, h = size
    img = Image.fromarray(smooth_image(h, w, seed=w))
    assert tiny_codec.decode(tiny_codec.encode(img, quality=1)).size == (w, h)


def test_grayscale_decodes_to_grayscale(tiny_codec: Codec):
    gray = Image.fromarray(smooth_image(40, 50)[..., 0], "L")
    out = tiny_codec.decode(tiny_codec.encode(gray, quality=4))
    assert out.mode == "L" and out.size == (50, 40)


def test_alpha_is_dropped(tiny_codec: Codec):
    rgba = np.concatenate([smooth_image(20, 30), np.full((20, 30, 1), 7, np.uint8)], axis=2)
    out = tiny_codec.decode(tiny_codec.encode(rgba, quality=2))
    assert out.mode == "RGB" and out.size == (30, 20)


def test_higher_quality_costs_more_bits(tiny_codec: Codec, photo):
    sizes = [len(tiny_codec.encode(photo, quality=q)) for q in (1, tiny_codec.qualities)]
    assert sizes[0] < sizes[1]


def test_target_bpp_picks_best_quality_under_budget(tiny_codec: Codec, photo):
    pixels = photo.width * photo.height
    bpp = [len(tiny_codec.encode(photo, quality=q)) * 8 / pixels for q in range(1, 9)]
    target = (bpp[2] + bpp[3]) / 2 if bpp[3] > bpp[2] else bpp[3]
    data = tiny_codec.encode(photo, target_bpp=target)
    q = unpack(data)[0].quality
    assert len(data) * 8 / pixels <= target
    assert all(b > target for b in bpp[q:])  # no better quality fits


def test_target_bpp_unreachable(tiny_codec: Codec, photo):
    with pytest.raises(ValueError, match="no quality"):
        tiny_codec.encode(photo, target_bpp=1e-4)


@pytest.mark.parametrize("quality", [0, 9, 2.5])
def test_bad_quality(tiny_codec: Codec, photo, quality):
    with pytest.raises(ValueError):
        tiny_codec.encode(photo, quality=quality)


def test_bad_inputs(tiny_codec: Codec, tmp_path):
    with pytest.raises(ImageError):
        tiny_codec.encode(np.zeros((4, 4), np.float32))
    with pytest.raises(ImageError):
        tiny_codec.encode(np.zeros((0, 4, 3), np.uint8))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png at all")
    with pytest.raises(ImageError):
        tiny_codec.encode(junk)
    with pytest.raises(ImageError):
        tiny_codec.encode(tmp_path / "missing.png")


def test_every_truncation_is_a_clean_error(tiny_codec: Codec):
    data = tiny_codec.encode(smooth_image(16, 16), quality=1)
    for n in range(len(data)):
        with pytest.raises(BitstreamError):
            tiny_codec.decode(data[:n])


def test_random_byte_flips_are_clean_errors(tiny_codec: Codec, photo):
    data = tiny_codec.encode(photo, quality=2)
    rng = np.random.default_rng(0)
    for _ in range(300):
        corrupt = bytearray(data)
        pos = int(rng.integers(len(data)))
        corrupt[pos] ^= int(rng.integers(1, 256))
        with pytest.raises(BitstreamError):
            tiny_codec.decode(bytes(corrupt))


def test_trailing_bytes_rejected(tiny_codec: Codec, photo):
    with pytest.raises(BitstreamError, match="unexpected bytes"):
        tiny_codec.decode(tiny_codec.encode(photo, quality=1) + b"\0")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"width": 16384 * 2, "height": 16384}, "invalid picture size"),  # over MAX_PIXELS
        ({"channels": 1}, "grayscale flag"),  # the flag says RGB
        ({"flags": 1}, "grayscale flag"),  # the flag says grayscale, the channels RGB
        (None, "appears twice"),  # a section repeated (its CRC right)
    ],
)
def test_headers_that_contradict_themselves(tiny_codec: Codec, change, message):
    header, sections = unpack(tiny_codec.encode(smooth_image(16, 16), quality=1))
    items = list(sections.items())
    if change is None:
        items.append(items[-1])
    else:
        header = replace(header, **change)
    with pytest.raises(BitstreamError, match=message):
        tiny_codec.decode(pack(header, items))


def test_file_from_another_model_is_refused(tiny_codec: Codec, photo, tmp_path):
    from codec import ImportanceCodec, ModelConfig
    from codec.zoo import export_weights

    other = tmp_path / "other.safetensors"
    export_weights(
        ImportanceCodec(ModelConfig(n=16, m=32, nz=16, nh=16, levels=8)), other, "tiny-test"
    )
    with pytest.raises(BitstreamError, match="coded with model"):
        Codec(other).decode(tiny_codec.encode(photo, quality=1))
