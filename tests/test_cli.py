"""The ``lcodec`` command: round trips, ``info``, and one-line errors with no output left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli.main import main

from .conftest import smooth_image


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(smooth_image(40, 56)).save(path)
    return path


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_encode_decode_info(tmp_path, png, tiny_weights, capsys):
    lcf, dec = tmp_path / "a.lcf", tmp_path / "a_dec.png"
    assert run(["--model", tiny_weights, "encode", png, "-o", lcf, "-q", "3"], capsys)[0] == 0
    assert run(["--model", tiny_weights, "decode", lcf, "-o", dec], capsys)[0] == 0
    assert Image.open(dec).size == (56, 40)
    code, out, _ = run(["info", lcf, "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["quality"] == 3 and info["width"] == 56
    assert info["bytes"] == lcf.stat().st_size
    assert info["header_bytes"] + sum(info["sections"].values()) == info["bytes"]


def test_version(capsys):
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.startswith("lcodec ") and ".lcf format 1" in out


def test_encode_is_repeatable(tmp_path, png, tiny_weights, capsys):
    a, b = tmp_path / "a.lcf", tmp_path / "b.lcf"
    for out in (a, b):
        run(["--model", tiny_weights, "encode", png, "-o", out], capsys)
    assert a.read_bytes() == b.read_bytes()


def test_target_bpp(tmp_path, png, tiny_weights, capsys):
    lcf = tmp_path / "a.lcf"
    code, out, _ = run(
        ["--model", tiny_weights, "encode", png, "-o", lcf, "--target-bpp", "8"], capsys
    )
    assert code == 0
    assert lcf.stat().st_size * 8 / (56 * 40) <= 8


def test_encode_reports_what_it_changed(tmp_path, tiny_weights, capsys):
    src, lcf, dec = tmp_path / "in.jpg", tmp_path / "a.lcf", tmp_path / "a.png"
    exif = Image.Exif()
    exif[0x0112] = 8  # viewers rotate 90 degrees counter-clockwise
    Image.fromarray(smooth_image(40, 56)).save(src, exif=exif.tobytes())
    code, out, _ = run(["--model", tiny_weights, "encode", src, "-o", lcf], capsys)
    assert code == 0 and "(turned upright as its EXIF orientation says)" in out
    run(["--model", tiny_weights, "decode", lcf, "-o", dec], capsys)
    assert Image.open(dec).size == (40, 56)


def test_outputs_get_the_modes_of_ordinary_files(tmp_path, png, tiny_weights, capsys):
    """Written through a private temporary file, yet readable as any new file would be; an
    overwritten file keeps its mode."""
    from cli.io import atomic_dir

    old = os.umask(0o022)
    try:
        lcf, dec = tmp_path / "a.lcf", tmp_path / "a.png"
        run(["--model", tiny_weights, "encode", png, "-o", lcf], capsys)
        assert lcf.stat().st_mode & 0o777 == 0o644
        dec.write_bytes(b"")
        dec.chmod(0o600)
        run(["--model", tiny_weights, "decode", lcf, "-o", dec], capsys)
        assert dec.stat().st_mode & 0o777 == 0o600 and dec.stat().st_size > 0
        with atomic_dir(tmp_path / "frames") as folder:
            (folder / "000000.png").write_bytes(b"")
        assert (tmp_path / "frames").stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(old)


def test_several_inputs_go_to_a_folder(tmp_path, png, tiny_weights, capsys):
    coded, decoded = tmp_path / "coded", tmp_path / "decoded"
    coded.mkdir(), decoded.mkdir()
    other, broken = tmp_path / "other.png", tmp_path / "broken.png"
    Image.fromarray(smooth_image(24, 32, seed=5)).save(other)
    broken.write_bytes(b"not a picture")
    args = ["--model", tiny_weights, "encode", png, broken, other, "-o", coded]
    code, _, err = run(args, capsys)
    assert code == 2  # one input failed; the others were coded
    assert err.strip().splitlines() == [err.strip()] and err.startswith(f"error: {broken}: ")
    assert sorted(p.name for p in coded.iterdir()) == ["in.lcf", "other.lcf"]
    files = sorted(coded.iterdir())
    assert run(["--model", tiny_weights, "decode", *files, "-o", decoded], capsys)[0] == 0
    assert Image.open(decoded / "other.png").size == (32, 24)
    code, _, _ = run(["--model", tiny_weights, "encode", png, "-o", tmp_path / "in.lcf"], capsys)
    assert (tmp_path / "in.lcf").read_bytes() == (coded / "in.lcf").read_bytes()


def test_several_inputs_need_a_folder_and_distinct_names(tmp_path, png, tiny_weights, capsys):
    same_name = tmp_path / "sub" / "in.png"
    same_name.parent.mkdir()
    same_name.write_bytes(png.read_bytes())
    for args in ([png, same_name, "-o", tmp_path], [png, png, "-o", tmp_path / "x.lcf"]):
        code, _, err = run(["--model", tiny_weights, "encode", *args], capsys)
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.lcf"))


def test_one_input_into_an_existing_folder(tmp_path, png, tiny_weights, capsys):
    """``-o FOLDER`` (existing, or named with a final slash) takes one input as it takes
    several: ``lcodec encode photos/*.jpg -o coded/`` whatever the glob matches."""
    coded = tmp_path / "coded"
    coded.mkdir()
    assert run(["--model", tiny_weights, "encode", png, "-o", coded], capsys)[0] == 0
    assert [p.name for p in coded.iterdir()] == ["in.lcf"]
    code, _, err = run(["--model", tiny_weights, "encode", png, "-o", f"{tmp_path}/new/"], capsys)
    assert code == 2 and err == f"error: output folder does not exist: {tmp_path / 'new'}\n"
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["encode", "{png}", "-o", "{png}"], "must end in .lcf"),
        (["encode", "{png}", "-o", "{tmp}/x.lcf", "--gop", "3"], "--gop is for video"),
        (["encode", "{png}", "-o", "{tmp}/x.lcf", "--fps", "25"], "--fps is for video"),
        (["decode", "{lcf}", "-o", "{tmp}/x.png", "--salvage"], "--salvage is for video"),
        (["--threads", "100000", "encode", "{png}", "-o", "{tmp}/x.lcf"], "--threads"),
        (["decode", "{lcf}", "-o", "{fifo}"], "not a regular file"),
        (["decode", "{lcf_png}", "-o", "{lcf_png}"], "overwrite the input"),
    ],
)
def test_outputs_and_options_refused_before_any_work(
    tmp_path, png, tiny_weights, capsys, args, message
):
    lcf, fifo = tmp_path / "in.lcf", tmp_path / "pipe.png"
    run(["--model", tiny_weights, "encode", png, "-o", lcf], capsys)
    lcf_png = tmp_path / "coded.png"  # an .lcf file named like a picture
    lcf_png.write_bytes(lcf.read_bytes())
    os.mkfifo(fifo)  # opening it for writing would hang
    names = {"png": png, "tmp": tmp_path, "lcf": lcf, "fifo": fifo, "lcf_png": lcf_png}
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    code, _, err = run(["--model", tiny_weights, *(a.format(**names) for a in args)], capsys)
    assert code == 2 and err.startswith("error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_output_through_a_symbolic_link(tmp_path, png, tiny_weights, capsys):
    """The file a link points to is written; the link stays a link."""
    link, real = tmp_path / "link.lcf", tmp_path / "real.lcf"
    link.symlink_to(real.name)
    assert run(["--model", tiny_weights, "encode", png, "-o", link], capsys)[0] == 0
    assert link.is_symlink() and real.stat().st_size > 0


def _assert_clean_error(code, err, output):
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert not output.exists()
    assert not list(output.parent.glob(f".{output.name}*"))  # no temporary left


def test_bad_inputs_give_one_line_errors(tmp_path, png, tiny_weights, capsys):
    out = tmp_path / "out.png"
    lcf = tmp_path / "good.lcf"
    run(["--model", tiny_weights, "encode", png, "-o", lcf], capsys)
    data = lcf.read_bytes()
    (tmp_path / "trunc.lcf").write_bytes(data[: len(data) // 2])
    (tmp_path / "empty.lcf").write_bytes(b"")
    (tmp_path / "foreign.lcf").write_bytes(png.read_bytes())
    flipped = bytearray(data)
    flipped[-3] ^= 0x55
    (tmp_path / "flip.lcf").write_bytes(bytes(flipped))
    for name in ("trunc.lcf", "empty.lcf", "foreign.lcf", "flip.lcf", "missing.lcf"):
        code, _, err = run(["--model", tiny_weights, "decode", tmp_path / name, "-o", out], capsys)
        _assert_clean_error(code, err, out)
    code, _, err = run(["info", tmp_path / "trunc.lcf"], capsys)
    assert code == 2 and err.startswith("error:")


def test_bad_encode_inputs(tmp_path, png, tiny_weights, capsys):
    out = tmp_path / "out.lcf"
    (tmp_path / "text.png").write_text("hello")
    cases = [
        ["encode", tmp_path / "text.png", "-o", out],
        ["encode", tmp_path / "missing.png", "-o", out],
        ["encode", png, "-o", out, "-q", "0"],
        ["encode", png, "-o", out, "-q", "99"],
        ["encode", png, "-o", out, "--target-bpp", "-1"],
        ["encode", png, "-o", out, "--target-bpp", "0.00001"],
        ["encode", png, "-o", out, "-q", "2", "--target-bpp", "1"],
        ["encode", png, "-o", out, "-q", "high"],
        ["encode", png, "-o", tmp_path / "nodir" / "x.lcf"],
    ]
    for args in cases:
        code, _, err = run(["--model", tiny_weights, *args], capsys)
        _assert_clean_error(code, err, out)


def test_missing_weights(tmp_path, png, capsys):
    out = tmp_path / "out.lcf"
    code, _, err = run(["--model", tmp_path / "none.safetensors", "encode", png, "-o", out], capsys)
    _assert_clean_error(code, err, out)


def test_unknown_output_format(tmp_path, png, tiny_weights, capsys):
    lcf = tmp_path / "a.lcf"
    run(["--model", tiny_weights, "encode", png, "-o", lcf], capsys)
    out = tmp_path / "out.xyz"
    code, _, err = run(["--model", tiny_weights, "decode", lcf, "-o", out], capsys)
    _assert_clean_error(code, err, out)


def test_console_script_error_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.lcf"
    bad.write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    proc = subprocess.run(
        [sys.executable, "-m", "cli.main", "decode", str(bad), "-o", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: not an lcodec file (bad magic number)"]


def test_info_loads_no_network_library():
    """``lcodec info`` reads headers: it must not pay for importing torch or CompressAI
    (seconds each).  ``import codec`` alone loads neither."""
    golden = Path(__file__).parent / "data"
    script = (
        "import sys, codec; from cli.main import main; "
        f"codes = [main(['info', {str(golden / 'golden_q4.lcf')!r}]), "
        f"main(['info', {str(golden / 'golden_q3.lcv')!r}])]; "
        "print(codes, sorted({'torch', 'compressai'} & set(sys.modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip().splitlines()[-1] == "[0, 0] []"


def test_closed_pipe_is_not_an_error(tmp_path, png, tiny_weights, capsys):
    lcf = tmp_path / "a.lcf"
    assert run(["--model", tiny_weights, "encode", png, "-o", lcf], capsys)[0] == 0
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "info", str(lcf)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # like `| head` that has read enough, before anything is written
    assert proc.wait(timeout=120) == 141
    assert proc.stderr.read() == b""


def test_huge_image_refused_before_decoding(tmp_path, tiny_weights, capsys, monkeypatch):
    import codec.image

    monkeypatch.setattr(codec.image, "MAX_PIXELS", 100)
    png = tmp_path / "big.png"
    Image.fromarray(smooth_image(20, 20)).save(png)
    out = tmp_path / "big.lcf"
    code, _, err = run(["--model", tiny_weights, "encode", png, "-o", out], capsys)
    _assert_clean_error(code, err, out)
    assert "too large" in err


def test_encode_with_refine(tmp_path, png, tiny_weights, capsys):
    a, b = tmp_path / "a.lcf", tmp_path / "b.lcf"
    for out in (a, b):
        code, _, _ = run(
            ["--model", tiny_weights, "encode", png, "-o", out, "--refine", "2"], capsys
        )
        assert code == 0
    assert a.read_bytes() == b.read_bytes()
    dec = tmp_path / "a.png"
    assert run(["--model", tiny_weights, "decode", a, "-o", dec], capsys)[0] == 0
    out = tmp_path / "bad.lcf"
    for steps in ("-1", "x"):
        code, _, err = run(
            ["--model", tiny_weights, "encode", png, "-o", out, "--refine", steps], capsys
        )
        _assert_clean_error(code, err, out)
