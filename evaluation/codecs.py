"""The codecs an RD run compares: classic anchors and our learned codec, by name.

Every codec turns an RGB ``PIL.Image`` into the bytes of the file it would write (container
included, no metadata) and back.  ``settings`` names the library version and options; it is
part of the cache key, so changing an option recomputes that codec's results.  A codec that
can tell the size of its coded payload without the container (``payload_size``) also gets a
``<name>-payload`` curve in the results.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, features

from .errors import EvaluationError
from .isobmff import hevc_payload_size

PAYLOAD_SUFFIX = "-payload"
ALIASES = {"heic-payload": "heic"}  # the payload curve comes with its codec's results


def clean_rgb(img: Image.Image) -> Image.Image:
    """An RGB copy of ``img`` without metadata (ICC, EXIF), which would otherwise be coded."""
    out = img.convert("RGB") if img.mode != "RGB" else img.copy()
    out.info.clear()
    return out


class ImageCodec:
    """A still-image codec: ``encode`` to file bytes, ``decode`` back to RGB."""

    name: str = ""
    qualities: tuple[int, ...] = ()
    quality_range: tuple[int, int] = (0, 100)  # the qualities the codec takes, both included

    @property
    def settings(self) -> str | None:
        """Library version and options; None means "do not cache" (unknown identity)."""
        raise NotImplementedError

    def encode(self, img: Image.Image, quality: int) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Image.Image:
        raise NotImplementedError

    def payload_size(self, data: bytes) -> int | None:
        """Bytes of the coded payload without the file container; None if not separable."""
        return None


class PillowCodec(ImageCodec):
    """A format Pillow writes and reads, with fixed save options plus ``quality``."""

    format: str = ""
    library: str = ""  # Pillow feature name of the codec library, for its version
    options: dict = {}

    @property
    def settings(self) -> str:
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        lib = f"{self.library}-{features.version(self.library)}"
        return f"pillow-{Image.__version__} {lib} {self.format} {opts}"

    def save_options(self, quality: int) -> dict:
        return {"quality": quality, **self.options}

    def encode(self, img: Image.Image, quality: int) -> bytes:
        buf = io.BytesIO()
        clean_rgb(img).save(buf, format=self.format, **self.save_options(quality))
        return buf.getvalue()

    def decode(self, data: bytes) -> Image.Image:
        with Image.open(io.BytesIO(data)) as im:
            return im.convert("RGB")


class Jpeg(PillowCodec):
    """Baseline JPEG (libjpeg-turbo), 4:2:0, Pillow's default tables and Huffman codes."""

    name, format, library = "jpeg", "JPEG", "jpg"
    qualities = (5, 10, 20, 35, 50, 70, 85)
    options = {"subsampling": "4:2:0"}


class Jpeg444(Jpeg):
    """JPEG without chroma subsampling."""

    name = "jpeg444"
    options = {"subsampling": "4:4:4"}


class WebP(PillowCodec):
    """Lossy WebP (libwebp, always 4:2:0), slowest and best method."""

    name, format, library = "webp", "WEBP", "webp"
    qualities = (0, 10, 25, 45, 65, 80, 90)
    options = {"method": 6}


class Jpeg2000(PillowCodec):
    """JPEG 2000 (OpenJPEG) in a JP2 file: 9/7 wavelet, colour transform, one rate layer.

    ``quality`` is the target rate in hundredths of a bit per pixel (OpenJPEG's rate
    control); it is used instead of OpenJPEG's fixed-quality (dB) mode, which codes Kodak
    at the same PSNR with 25-60% more bits.
    """

    name, format, library = "jpeg2000", "JPEG2000", "jpg_2000"
    qualities = (10, 20, 40, 70, 120, 200)
    quality_range = (1, 2400)  # up to 24 bpp, uncompressed 8-bit RGB
    options = {"irreversible": True, "mct": 1, "quality_mode": "rates"}

    def save_options(self, quality: int) -> dict:
        ratio = 24.0 / (quality / 100.0)  # OpenJPEG rates are compression ratios of 8-bit RGB
        return {"quality_layers": [ratio], **self.options}


class Avif(PillowCodec):
    """AVIF (libavif with libaom), 4:2:0, Pillow's default speed 6, one thread."""

    name, format, library = "avif", "AVIF", "avif"
    qualities = (8, 20, 35, 50, 65, 80, 86)
    options = {"subsampling": "4:2:0", "speed": 6, "max_threads": 1}


class JpegXL(ImageCodec):
    """JPEG XL (libjxl via imagecodecs), effort 7; ``quality`` is libjxl's 0-100 scale."""

    name = "jxl"
    qualities = (5, 20, 40, 60, 75, 85, 90)
    effort = 7

    @property
    def settings(self) -> str:
        import imagecodecs

        return f"imagecodecs-{imagecodecs.__version__} effort={self.effort}"

    def encode(self, img: Image.Image, quality: int) -> bytes:
        import imagecodecs

        arr = np.asarray(clean_rgb(img))
        data = imagecodecs.jpegxl_encode(arr, level=quality, effort=self.effort, numthreads=1)
        return bytes(data)

    def decode(self, data: bytes) -> Image.Image:
        import imagecodecs

        return Image.fromarray(imagecodecs.jpegxl_decode(data)).convert("RGB")


class Heic(ImageCodec):
    """HEIC: HEVC (x265 via libheif/pillow-heif) in 4:4:4, ``preset=veryslow``, ``tune=psnr``.

    The closest in-process stand-in for BPG 4:4:4.  Its payload size is the HEVC bitstream
    inside the HEIF file (see :mod:`evaluation.isobmff`), reported as ``heic-payload``.
    """

    name = "heic"
    qualities = (5, 15, 25, 35, 45, 55, 65)
    enc_params = {"preset": "veryslow", "tune": "psnr"}

    @property
    def settings(self) -> str:
        import pillow_heif

        lib = f"pillow-heif-{pillow_heif.__version__} libheif-{pillow_heif.libheif_version()}"
        return f"{lib} chroma=444 {self.enc_params}"

    def encode(self, img: Image.Image, quality: int) -> bytes:
        import pillow_heif

        buf = io.BytesIO()
        heif = pillow_heif.from_pillow(clean_rgb(img))
        params = dict(self.enc_params)  # pillow-heif adds to the dict it is given
        heif.save(buf, quality=quality, chroma="444", enc_params=params)
        return buf.getvalue()

    def decode(self, data: bytes) -> Image.Image:
        import pillow_heif

        return pillow_heif.open_heif(io.BytesIO(data)).to_pillow()

    def payload_size(self, data: bytes) -> int | None:
        return hevc_payload_size(data)


class Ours(ImageCodec):
    """Our learned codec (``codec.load_model()``), qualities 1..N."""

    name = "ours"
    downscale = 1
    refine = 0  # encoder-side refinement steps (codec.refine)

    def __init__(self) -> None:
        try:
            import codec

            load_model = codec.load_model
        except (ImportError, AttributeError) as e:
            raise EvaluationError(f"codec 'ours' is unavailable: {e}") from None
        try:
            self.model = load_model()
        except Exception as e:  # any failure to load weights is a user-facing problem
            raise EvaluationError(f"cannot load our model: {e}") from None
        self.qualities = tuple(range(1, int(self.model.qualities) + 1))
        self.quality_range = (1, int(self.model.qualities))

    @property
    def settings(self) -> str | None:
        ident = [getattr(self.model, a, "") for a in ("model_id", "digest")]
        ident = [v.hex() if isinstance(v, bytes) else str(v) for v in ident]
        return " ".join(ident) if any(ident) else None

    def encode(self, img: Image.Image, quality: int) -> bytes:
        return self.model.encode(
            clean_rgb(img), quality, downscale=self.downscale, refine=self.refine
        )

    def decode(self, data: bytes) -> Image.Image:
        return self.model.decode(data).convert("RGB")


class OursRefined(Ours):
    """Our codec with encoder-side refinement: the same decoder, slower encoding."""

    name = "ours-refine"
    refine = 50

    @property
    def settings(self) -> str | None:
        from codec.refine import LEARNING_RATE, TEMPERATURES, TILE

        knobs = f"refine={self.refine} lr={LEARNING_RATE} t={TEMPERATURES} tile={TILE}"
        return f"{super().settings} {knobs}"


class OursDown2(Ours):
    """Our codec's low-rate mode: coded at half size, super-resolved by 2 when decoded."""

    name = "ours-down2"
    downscale = 2

    @property
    def settings(self) -> str | None:
        sr = self.model.upscaler(self.downscale)
        return f"{super().settings} {sr.model_id} {sr.digest.hex()}"


class OursDown4(OursDown2):
    """Our codec's low-rate mode at quarter size, super-resolved by 4."""

    name = "ours-down4"
    downscale = 4


ANCHORS: dict[str, type[ImageCodec]] = {
    c.name: c for c in (Jpeg, Jpeg444, WebP, Jpeg2000, Heic, Avif, JpegXL)
}
CODECS: dict[str, type[ImageCodec]] = {
    c.name: c for c in (Ours, OursRefined, OursDown2, OursDown4)
} | ANCHORS
GROUPS = {"all": list(CODECS), "anchors": list(ANCHORS)}


def parse_codec_names(spec: str | Sequence[str]) -> list[str]:
    """Codec names of a comma list, ``all`` and ``anchors`` expanded, aliases resolved.

    ``heic-payload`` selects ``heic``, whose results always include the payload curve.
    """
    return expand_names(spec, GROUPS, [*CODECS, *ALIASES, *GROUPS], ALIASES)


def expand_names(
    spec: str | Sequence[str],
    groups: Mapping[str, Sequence[str]],
    known: Sequence[str],
    aliases: Mapping[str, str] | None = None,
    kind: str = "codec",
) -> list[str]:
    """The names of a comma list (or of a sequence), each once, in order: ``groups``
    expanded, ``aliases`` resolved.  Raises EvaluationError for a name not in ``known``
    (which the message lists) or for no names at all."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names: list[str] = []
    for item in (s.strip().lower() for s in items if s.strip()):
        for name in groups.get(item, [(aliases or {}).get(item, item)]):
            if name not in known:
                raise EvaluationError(f"unknown {kind} '{name}' (known: {', '.join(known)})")
            if name not in names:
                names.append(name)
    if not names:
        raise EvaluationError("no codecs given")
    return names


def make_codecs(names: Sequence[str]) -> list[ImageCodec]:
    """Instances of the named codecs (raises EvaluationError if one is unavailable)."""
    return [CODECS[n]() for n in parse_codec_names(names)]
