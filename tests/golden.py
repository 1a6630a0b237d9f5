"""Golden files: a picture and a short clip coded by the shipped models, with their decodes.

    python -m tests.golden

writes them into ``tests/data`` (run it when a shipped model or the format changes, and
commit the files).  ``test_golden.py`` decodes them on whatever machine it runs on: files
written on one machine, by an earlier version, must keep decoding, to the same pixels up
to float rounding in the synthesis (the probability path is exact, so a desynchronised
entropy decoder would show as garbage, not as a grey level).
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).parent / "data"
SOURCE = DATA / "postfilter_wiki_003_crop.png"
IMAGE, IMAGE_DECODED = DATA / "golden_q4.lcf", DATA / "golden_q4_decoded.png"
VIDEO, VIDEO_DECODED = DATA / "golden_q3.lcv", DATA / "golden_q3_decoded.png"
QUALITY_IMAGE, QUALITY_VIDEO = 4, 3
FPS = Fraction(25)


def clip_frames() -> list[np.ndarray]:
    """Three 96x128 frames panning over the source photo, two pixels per frame: an I-frame
    and two P-frames."""
    rgb = np.asarray(Image.open(SOURCE).convert("RGB"))
    return [np.ascontiguousarray(rgb[16:112, 2 * i : 2 * i + 128]) for i in range(3)]


def main() -> None:
    import codec
    from codec.video import VideoCodec, iter_frames

    model = codec.load_model()
    data = model.encode(Image.open(SOURCE).convert("RGB"), quality=QUALITY_IMAGE)
    IMAGE.write_bytes(data)
    Image.fromarray(model.decode_array(data)[1]).save(IMAGE_DECODED)
    video = VideoCodec.shipped(model)
    video.choose_intra = False  # P-frames even where an I-frame would cost less
    buf = io.BytesIO()
    types = [f.type for f in video.encode_frames(clip_frames(), buf, FPS, QUALITY_VIDEO)]
    VIDEO.write_bytes(buf.getvalue())
    decoded = list(iter_frames(VIDEO, video))
    Image.fromarray(np.concatenate(decoded, axis=0)).save(VIDEO_DECODED)
    print(f"{IMAGE.name}: {len(data)} bytes; {VIDEO.name}: {types}, {len(buf.getvalue())} bytes")


if __name__ == "__main__":
    main()
