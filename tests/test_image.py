"""Reading pictures: what a viewer applies (EXIF orientation, ICC profile) is applied, and
every change made to the input is reported."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms

from codec.image import ImageError, to_picture

from .conftest import smooth_image

# sRGB's primaries adapted to D50, as ICC profiles hold them (X, Y, Z of red, green, blue)
SRGB_PRIMARIES = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))


def matrix_profile(name: str, primaries, gamma: float = 2.2) -> bytes:
    """A minimal ICC v2 RGB display profile: the primaries' XYZ and a gamma curve."""

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + bytes(4) + b"".join(struct.pack(">i", round(v * 65536)) for v in (x, y, z))

    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    text = name.encode() + b"\0"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(4 + 4 + 2 + 1 + 67)
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        *((tag, xyz(*p)) for tag, p in zip((b"rXYZ", b"gXYZ", b"bXYZ"), primaries, strict=True)),
        *((tag, curve) for tag in (b"rTRC", b"gTRC", b"bTRC")),
    ]
    offset, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
    header += bytes(12) + b"acsp" + bytes(24) + struct.pack(">I", 0)
    header += struct.pack(">iii", *(round(v * 65536) for v in (0.9642, 1.0, 0.8249)))
    header += bytes(128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + data


def saved(img: Image.Image, fmt: str = "PNG", **params) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **params)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_exif_orientation_is_applied():
    rgb = smooth_image(30, 50)
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: viewers rotate 90 degrees clockwise
    pic = to_picture(saved(Image.fromarray(rgb), exif=exif.tobytes()))
    assert pic.rgb.shape == (50, 30, 3)
    assert np.array_equal(pic.rgb, np.rot90(rgb, k=-1))
    assert pic.changes == ["turned upright as its EXIF orientation says"]


def test_an_srgb_picture_keeps_its_pixels():
    rgb = smooth_image(20, 30)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pic = to_picture(saved(Image.fromarray(rgb), icc_profile=srgb))
    assert np.array_equal(pic.rgb, rgb) and pic.changes == []


def test_colours_of_another_profile_are_converted_to_srgb():
    swapped = (SRGB_PRIMARIES[1], SRGB_PRIMARIES[0], SRGB_PRIMARIES[2])  # red and green
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255  # "red" in a profile whose first primary is sRGB's green
    icc = matrix_profile("Swapped RG", swapped)
    pic = to_picture(saved(Image.fromarray(rgb), icc_profile=icc))
    r, g, b = pic.rgb[0, 0].astype(int)
    assert g > 240 and r < 20 and b < 20
    assert pic.changes == ["colours converted from ICC profile 'Swapped RG' to sRGB"]


def test_an_unreadable_profile_is_ignored():
    rgb = smooth_image(8, 8)
    pic = to_picture(saved(Image.fromarray(rgb), icc_profile=b"not a profile"))
    assert np.array_equal(pic.rgb, rgb)
    assert len(pic.changes) == 1 and pic.changes[0].startswith("unreadable ICC profile ignored")


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_only_the_first_frame_of_an_animation_is_coded(fmt, tmp_path):
    """From an open image and from a file (read, then closed, before it is coded)."""
    a, b = (Image.fromarray(smooth_image(16, 16, seed=s)) for s in (1, 2))
    path = tmp_path / f"animation.{fmt.lower()}"
    a.save(path, fmt, save_all=True, append_images=[b])
    first = np.asarray(Image.open(path).convert("RGB"))
    for source in (saved(a, fmt, save_all=True, append_images=[b]), path):
        pic = to_picture(source)
        assert pic.changes == ["first of 2 frames"] and np.array_equal(pic.rgb, first)


def test_alpha_is_reported_dropped():
    rgba = np.concatenate([smooth_image(8, 8), np.full((8, 8, 1), 9, np.uint8)], axis=2)
    for source in (rgba, Image.fromarray(rgba)):
        pic = to_picture(source)
        assert pic.alpha_dropped and pic.changes == ["alpha channel dropped"]


def test_float_pictures_are_refused():
    with pytest.raises(ImageError, match="float"):
        to_picture(Image.fromarray(np.zeros((4, 4), np.float32)))
