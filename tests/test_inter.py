"""The P-frame codec: flow and warping, the tiny random model's real bytes, the video path
with P-frames, the CLI option and a smoke run of the trainer.

The tiny inter model has random weights (the shipped one: test_shipped_model): these check
the format, exactness and plumbing, not compression.
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from bitstream import BitstreamError
from bitstream.pframe import pack_pframe, unpack_pframe
from cli.main import main as cli_main
from codec import Codec, WeightsError
from codec.flow import BlockSearch, FlowNet, cost_volume, median3, warp
from codec.inter_coder import InterCoder
from codec.inter_model import InterCodec, InterConfig
from codec.inter_weights import export_inter_weights
from codec.train_inter import intra_autoencoder_state, motion_loss
from codec.train_inter import main as train_main
from codec.video import VideoCodec, encode_video, iter_frames, scan_video

from .conftest import smooth_image
from .test_video import frames_of, write_clip

TINY = InterConfig(flow_levels=3, flow_channels=8, nm=8, mm=16, mz=8, n=16, m=16, nz=8, mc=8)


@pytest.fixture(scope="module")
def inter_weights(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("inter") / "tiny-inter.safetensors"
    export_inter_weights(InterCodec(TINY), path, model_id="tiny-inter")
    return path


@pytest.fixture(scope="module")
def inter(inter_weights) -> InterCoder:
    return InterCoder(inter_weights)


def moving_pair(h: int = 40, w: int = 70) -> tuple[np.ndarray, np.ndarray]:
    """(current, reference): a smooth picture moved by 3 pixels."""
    base = smooth_image(h, w + 3, seed=2)
    return np.ascontiguousarray(base[:, 3:]), np.ascontiguousarray(base[:, :w])


def test_shapes_and_bits() -> None:
    net = InterCodec(TINY).train()
    x, ref = torch.rand(2, 3, 64, 128), torch.rand(2, 3, 64, 128)
    out = net(x, ref, torch.tensor([0, 7]), "soft", 0.5)
    assert out["x_hat"].shape == out["prediction"].shape == x.shape
    for key in ("motion_bits", "residual_bits"):
        assert out[key].shape == (2,) and torch.isfinite(out[key]).all() and (out[key] > 0).all()
    assert FlowNet(3, 8)(x, ref).shape == (2, 2, 64, 128)


def test_warp_identity_and_integer_shift() -> None:
    x = torch.rand(1, 3, 9, 12)
    assert torch.allclose(warp(x, torch.zeros(1, 2, 9, 12)), x, atol=1e-6)
    flow = torch.zeros(1, 2, 9, 12)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # dx = 2, dy = -1
    out = warp(x, flow)
    assert torch.allclose(out[:, :, 1:, :-2], x[:, :, :-1, 2:], atol=1e-5)
    assert torch.allclose(out[:, :, 0, :-2], x[:, :, 0, 2:], atol=1e-5)  # edge replicated


def test_cost_volume_finds_an_integer_shift() -> None:
    ref = torch.rand(1, 3, 20, 24)
    flow = torch.zeros(1, 2, 20, 24)
    flow[:, 0], flow[:, 1] = -1.0, 2.0  # current pixel p is the reference's p + (-1, 2)
    current = warp(ref, flow)
    cost = cost_volume(current, ref, radius=2)[0, :, 4:-4, 4:-4]  # away from the edges
    assert cost.shape[0] == 25
    best = cost.argmin(0)
    assert (best == (2 + 2) * 5 + (2 - 1)).all()  # row dy = +2, column dx = -1
    assert cost.min(0).values.max() < 1e-10


def textured_shift(dx: int, dy: int, h: int = 96, w: int = 128) -> tuple[torch.Tensor, ...]:
    """(current, reference): a textured picture whose pixel ``p`` is the reference's
    ``p + (dx, dy)``, the true flow of an exact estimator."""
    torch.manual_seed(5)
    base = F.interpolate(torch.rand(1, 3, h // 4 + 8, w // 4 + 8), scale_factor=4, mode="bicubic")
    base = base.clamp(0, 1)
    ref = base[:, :, 16 : 16 + h, 16 : 16 + w]
    current = base[:, :, 16 + dy : 16 + dy + h, 16 + dx : 16 + dx + w]
    return current, ref


def test_block_search_finds_a_large_shift() -> None:
    current, ref = textured_shift(-9, 6)
    flow = BlockSearch(levels=3)(current, ref)[0, :, 16:-16, 16:-16]  # away from the edges
    error = (flow - torch.tensor([-9.0, 6.0]).view(2, 1, 1)).abs().amax(0)
    assert (error < 0.5).float().mean() > 0.8
    static = (current - ref).pow(2).mean()
    assert (warp(ref, BlockSearch(levels=3)(current, ref)) - current).pow(2).mean() < static / 10


def test_block_search_penalty_keeps_a_flat_picture_still() -> None:
    rng = torch.Generator().manual_seed(3)
    flat = 0.5 + 0.01 * torch.rand(1, 3, 64, 64, generator=rng)  # noise only, no motion
    noisy = 0.5 + 0.01 * torch.rand(1, 3, 64, 64, generator=rng)
    assert BlockSearch(levels=2)(noisy, flat).abs().max() == 0
    assert BlockSearch(levels=2, penalty=0.0)(noisy, flat).abs().max() > 0


def test_block_search_matches_its_cost_volume_definition() -> None:
    """The fast running-minimum search picks exactly the cost volume's argmin (first of
    equals), and the sorted-columns median is the median of the 3x3 patches."""
    g = torch.Generator().manual_seed(4)
    current, warped = torch.rand(2, 3, 20, 28, generator=g), torch.rand(2, 3, 20, 28, generator=g)
    search = BlockSearch(radius=2, penalty=0.01)
    costs = cost_volume(current, warped, 2, block=5) + search.penalty * search.lengths
    assert torch.equal(search.best_displacements(current, warped), costs.argmin(1))
    flat = torch.full((1, 3, 8, 8), 0.5)  # every displacement costs nothing: the first wins
    assert BlockSearch(penalty=0.0).best_displacements(flat, flat).eq(0).all()
    flow = torch.randn(2, 2, 9, 11, generator=g).round()  # integer flows: many equal values
    patches = F.unfold(F.pad(flow, [1] * 4, mode="replicate"), 3).view(2, 2, 9, 9, 11)
    assert torch.equal(median3(flow), patches.median(2).values)


def test_changing_the_flow_estimator_keeps_the_coder() -> None:
    torch.manual_seed(4)
    learned = InterCodec(TINY).eval()
    search = learned.with_flow("search", 0.001)
    assert isinstance(search.flow, BlockSearch) and search.flow.penalty == 0.001
    assert not any(k.startswith("flow.") for k in search.state_dict())
    kept = {k: v for k, v in learned.state_dict().items() if not k.startswith("flow.")}
    assert kept.keys() == search.state_dict().keys()
    assert all(torch.equal(v, search.state_dict()[k]) for k, v in kept.items())
    back = search.with_flow("learned")
    assert isinstance(back.flow, FlowNet) and back.config.flow == "learned"


def test_both_flows_start_as_the_learned_model() -> None:
    """The block search's flow enters the motion coder through zero weights: same coding."""
    torch.manual_seed(7)
    learned = InterCodec(TINY).eval()
    both = learned.with_flow("both")
    assert isinstance(both.flow, FlowNet) and isinstance(both.search, BlockSearch)
    current, ref = textured_shift(3, -2, 64, 128)
    q = torch.tensor([5])
    assert both.motion_input(current, ref).shape[1] == 4
    with torch.no_grad():
        a, b = learned(current, ref, q), both(current, ref, q)
    for key in ("x_hat", "motion_bits", "residual_bits"):  # the wider layer sums in another order
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-3)
    assert torch.equal(
        both.with_flow("learned").state_dict()["flow.nets.0.log_sharpness"],
        learned.state_dict()["flow.nets.0.log_sharpness"],
    )
    with pytest.raises(ValueError, match="unknown flow"):
        InterCodec(InterConfig(flow="magic"))


def test_search_flow_weights_code_and_round_trip(tmp_path) -> None:
    torch.manual_seed(6)
    path = tmp_path / "search.safetensors"
    export_inter_weights(InterCodec(TINY).with_flow("search"), path, model_id="tiny-search")
    coder = InterCoder(path)
    assert coder.net.config.flow == "search"
    cur, ref = moving_pair()
    payload, recon = coder.encode(cur, ref, 4)
    assert (coder.decode(payload, ref) == recon).all()


def test_payload_round_trip_is_bit_exact(inter) -> None:
    cur, ref = moving_pair()
    payload, recon = inter.encode(cur, ref, 3)
    assert payload[0] == 3 and recon.shape == cur.shape and recon.dtype == np.uint8
    before = torch.get_num_threads()
    try:
        decoded = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            decoded.append(inter.decode(payload, ref))
    finally:
        torch.set_num_threads(before)
    assert (decoded[0] == recon).all() and (decoded[1] == recon).all()
    assert inter.encode(cur, ref, 3)[0] == payload  # deterministic
    assert inter.encode(cur, ref, 8)[0][0] == 8  # the payload carries its quality
    with pytest.raises(ValueError, match="quality"):
        inter.encode(cur, ref, 9)
    with pytest.raises(ValueError, match="size"):
        inter.encode(cur, ref[:-1], 3)


def test_bad_payloads_raise_bitstream_errors(inter) -> None:
    cur, ref = moving_pair()
    payload, _ = inter.encode(cur, ref, 5)
    for cut in range(len(payload)):
        with pytest.raises(BitstreamError):
            inter.decode(payload[:cut], ref)
    for bad in (b"\x00" + payload[1:], b"\x09" + payload[1:], payload + b"\0", b"\xff" * 9):
        with pytest.raises(BitstreamError):
            inter.decode(bad, ref)
    rng = np.random.default_rng(0)
    for pos in rng.integers(len(payload) // 2, len(payload), 10):  # inside the coded data
        bad = bytearray(payload)
        bad[pos] ^= 0x55
        try:  # undetectable without a CRC (the .lcv record has one): no crash, right size
            assert inter.decode(bytes(bad), ref).shape == ref.shape
        except BitstreamError:
            pass


def test_weights_of_the_wrong_kind(tiny_weights, inter_weights) -> None:
    with pytest.raises(WeightsError, match="not a P-frame model"):
        InterCoder(tiny_weights)
    with pytest.raises(WeightsError):
        Codec(inter_weights)


def test_pframe_layout() -> None:
    sections = [b"", bytes(4), bytes(4 * 200), bytes(4 * 20000)]
    data = pack_pframe(7, sections)
    assert unpack_pframe(data, 4) == (7, sections)
    assert len(data) == 1 + 1 + 1 + 2 + 3 + sum(map(len, sections))
    with pytest.raises(ValueError):
        pack_pframe(1, [b"abc"])


class Recording:
    """An inter coder that remembers the reconstructions its encoder returned."""

    def __init__(self, inner: InterCoder) -> None:
        self.inner, self.model_id, self.digest = inner, inner.model_id, inner.digest
        self.qualities = inner.qualities
        self.recons: list[np.ndarray] = []

    def encode(self, frame, reference, quality):
        payload, recon = self.inner.encode(frame, reference, quality)
        self.recons.append(recon)
        return payload, recon

    def decode(self, payload, reference):
        return self.inner.decode(payload, reference)


def test_video_with_p_frames(tmp_path, tiny_codec, inter) -> None:
    src, dst = tmp_path / "in.mkv", tmp_path / "a.lcv"
    write_clip(src, frames_of(8, 32, 48))
    recording = Recording(inter)
    coder = VideoCodec(tiny_codec, recording, choose_intra=False)  # random weights: all P
    summary = encode_video(src, dst, quality=4, gop=4, codec=coder)
    assert "".join(f.type for f in summary.frames) == "IPPPIPPP"
    header = scan_video(dst).header
    assert (header.inter_id, header.inter_digest) == ("tiny-inter", inter.digest)
    decoded = list(iter_frames(dst, VideoCodec(tiny_codec, inter)))
    p_frames = [decoded[i] for i in (1, 2, 3, 5, 6, 7)]
    assert all((a == b).all() for a, b in zip(p_frames, recording.recons, strict=True))
    with pytest.raises(BitstreamError, match="P-frame model"):
        list(iter_frames(dst, VideoCodec(tiny_codec)))


def test_a_planned_p_frame_becomes_an_i_frame_where_cheaper(tmp_path, tiny_codec) -> None:
    class Wasteful:  # a P-frame coder worse than coding the frame alone
        model_id, digest, qualities = "wasteful", bytes(8), 8

        def encode(self, frame, reference, quality):
            return bytes(10**5), reference  # huge and predicts nothing

    src, dst = tmp_path / "in.mkv", tmp_path / "a.lcv"
    write_clip(src, frames_of(3, 32, 48))
    summary = encode_video(src, dst, quality=4, gop=4, codec=VideoCodec(tiny_codec, Wasteful()))
    assert "".join(f.type for f in summary.frames) == "III"
    assert all(f.bytes < 10**5 for f in summary.frames)


def test_an_i_frame_is_tried_only_where_the_p_frame_cost_rises(tmp_path, tiny_codec) -> None:
    class Scripted:  # predicts perfectly; the payload sizes are given per frame
        model_id, digest, qualities = "scripted", bytes(8), 8

        def __init__(self, sizes):
            self.sizes = iter(sizes)

        def encode(self, frame, reference, quality):
            return bytes(next(self.sizes)), frame

    src = tmp_path / "in.mkv"
    write_clip(src, frames_of(6, 32, 48))
    calls: list[int] = []

    class Spy:  # the tiny image codec, counting its encodes
        def __getattr__(self, name):
            return getattr(tiny_codec, name)

        def encode(self, rgb, quality):
            calls.append(quality)
            return tiny_codec.encode(rgb, quality=quality)

    def coded(sizes: list[int]) -> str:
        calls.clear()
        summary = encode_video(
            src, tmp_path / "a.lcv", gop=8, codec=VideoCodec(Spy(), Scripted(sizes))
        )
        return "".join(f.type for f in summary.frames)

    # 1-byte P-frames: far below the I-frame's cost and steady: no I-frame tried
    assert coded([1, 1, 1, 1, 1]) == "IPPPPP" and len(calls) == 1
    # 1 byte to 3: a jump of 3x, so frame 3 tries an I-frame (it costs more); then steady
    assert coded([1, 1, 3, 3, 3]) == "IPPPPP" and len(calls) == 2
    # P-frames far dearer than the I-frame: every one tries an I-frame and keeps it
    assert coded([10**5] * 5) == "IIIIII" and len(calls) == 6


def test_cli_inter_model(tmp_path, tiny_weights, inter_weights, capsys) -> None:
    src, lcv, out = tmp_path / "in.y4m", tmp_path / "a.lcv", tmp_path / "out.y4m"
    write_clip(src, frames_of(3, 32, 48))
    model = ["--model", str(tiny_weights)]
    args = [*model, "encode", str(src), "-o", str(lcv), "--inter-model", str(inter_weights)]
    assert cli_main(args) == 0
    assert "1 I, 2 P" in capsys.readouterr().out
    assert cli_main([*model, "decode", str(lcv), "-o", str(out)]) == 2  # no shipped P model
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--inter-model" in err and not out.exists()
    args = [*model, "decode", str(lcv), "-o", str(out), "--inter-model", str(inter_weights)]
    assert cli_main(args) == 0 and out.is_file()
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_image(16, 16)).save(photo)
    args = [*model, "encode", str(photo), "-o", str(tmp_path / "p.lcf")]
    assert cli_main([*args, "--inter-model", str(inter_weights)]) == 2


def test_rd_video_ours_against_all_intra(tmp_path, tiny_weights, inter_weights, capsys) -> None:
    data, out = tmp_path / "seqs", tmp_path / "rd"
    data.mkdir()
    write_clip(data / "tiny.y4m", frames_of(3, 32, 48))
    args = ["--model", tiny_weights, "rd", data, "--video", "-o", out, "--gop", "2"]
    args += ["--codecs", "ours,ours-intra", "--ref-codec", "ours-intra", "-q", "2,6"]
    args += ["--inter-model", inter_weights, "--quiet"]
    assert cli_main([str(a) for a in args]) == 0, capsys.readouterr().err
    result = json.loads((out / "rd.json").read_text())
    assert "tiny-inter" in result["codecs"]["ours"]["settings"]
    assert "all-intra" in result["codecs"]["ours-intra"]["settings"]
    ours = [r for r in result["records"] if r["codec"] == "ours"]
    intra = [r for r in result["records"] if r["codec"] == "ours-intra"]
    assert len(ours) == len(intra) == 2
    assert all(a["bytes"] != b["bytes"] for a, b in zip(ours, intra, strict=True))  # P-frames
    assert [r["codec"] for r in result["bd_vs_intra"]] == ["ours", "ours"]  # sequence, mean
    missing = [*args[:-3], "--inter-model", tmp_path / "none.safetensors"]
    assert cli_main([str(a) for a in missing]) == 2
    assert capsys.readouterr().err.startswith("error: cannot load our model")


def test_residual_coder_starts_as_the_image_autoencoder(tiny_codec) -> None:
    image = tiny_codec.net
    c = image.config
    model = InterCodec(InterConfig(n=c.n, m=c.m, nz=c.nz, lambdas=c.lambdas))
    model.residual.load_state_dict(intra_autoencoder_state(image))
    x, q = torch.rand(1, 3, 64, 64), torch.tensor([2])
    with torch.no_grad():
        y_image = image.g_a(x)[:, :-1] * image.gain(q)  # without the importance logit
        assert torch.equal(model.residual.analyse(x, q), y_image)
        assert torch.equal(model.residual.synthesize(y_image, q), image.synthesize(y_image, q))
    assert tiny_codec.net.g_a[-1].out_channels == c.m + 1  # the image model is untouched


def test_trainer_smoke_resume_and_export(tmp_path, tiny_weights, capsys) -> None:
    clips, photos, run = tmp_path / "clips", tmp_path / "photos", tmp_path / "run"
    clips.mkdir()
    photos.mkdir()
    write_clip(clips / "a.mkv", frames_of(6, 64, 80))
    write_clip(clips / "b.mkv", frames_of(4, 64, 64))  # held out for validation
    for seed in range(2):
        Image.fromarray(smooth_image(140, 150, seed)).save(photos / f"p{seed}.png")
    args = ["--clips", clips, "--photos", photos, "--out", run, "--batch", "1", "--crop", "64"]
    args += ["--frames", "3", "--flow-steps", "2", "--motion-steps", "1", "--threads", "1"]
    args += ["--log-every", "1"]
    args += ["--ckpt-every", "2", "--device", "cpu", "--intra", tiny_weights, "--mc", "8"]
    args += ["--holdout-photos", "0", "--val-every", "2", "--val-batch", "1"]
    args = [str(a) for a in args]
    train_main([*args, "--steps", "3"])
    train_main([*args, "--steps", "5", "--intra", "noise"])
    assert "resumed" in capsys.readouterr().out
    with open(run / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [r["stage"] for r in rows] == ["flow"] * 2 + ["motion"] + ["rd"] * 2
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    assert all(float(r["bpp"]) > 0 for r in rows[2:])
    with open(run / "val_log.csv") as f:
        val = list(csv.DictReader(f))
    assert [(int(r["step"]), r["quality"]) for r in val[:4]] == [
        (2, "-"),
        (2, "1"),
        (2, "5"),
        (2, "8"),
    ]
    assert [int(r["step"]) for r in val[4::4]] == [3, 4, 5]
    assert all(math.isfinite(float(r["prediction_psnr"])) for r in val)
    coder = InterCoder(run / "model.safetensors")
    cur, ref = moving_pair(64, 64)
    payload, recon = coder.encode(cur, ref, 2)
    assert (coder.decode(payload, ref) == recon).all()


def conditional_tiny(seed: int = 3) -> InterCodec:
    """The tiny random model converted to conditional coding, its refinement made non-zero
    so that it takes part."""
    torch.manual_seed(seed)
    model = InterCodec(TINY).with_conditional_coding(8)
    with torch.no_grad():
        for p in model.fusion.parameters():
            p.normal_(0, 0.05)
    return model.eval()


def test_conditional_coding_starts_as_the_residual_model() -> None:
    torch.manual_seed(2)
    residual = InterCodec(TINY).eval()
    conditional = residual.with_conditional_coding(8).eval()
    assert conditional.config.conditional == 8 and residual.config.conditional == 0
    x, ref, q = torch.rand(1, 3, 64, 128), torch.rand(1, 3, 64, 128), torch.tensor([4])
    with torch.no_grad():
        a, b = residual(x, ref, q), conditional(x, ref, q)
        assert conditional.residual_input(x, ref).shape[1] == 6
    for key in ("x_hat", "residual_bits", "motion_bits"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="already"):
        conditional.with_conditional_coding(8)
    with torch.no_grad():  # the refinement is on the decoding path
        changed = conditional_tiny()(x, ref, q)["x_hat"]
    assert (changed - b["x_hat"]).abs().max() > 1e-3


def test_conditional_weights_round_trip_bit_exact(tmp_path) -> None:
    path = tmp_path / "cond.safetensors"
    export_inter_weights(conditional_tiny(), path, model_id="tiny-cond")
    coder = InterCoder(path)
    assert coder.net.config.conditional == 8
    cur, ref = moving_pair()
    payload, recon = coder.encode(cur, ref, 6)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            assert (coder.decode(payload, ref) == recon).all()
    finally:
        torch.set_num_threads(before)


def test_trainer_converts_to_conditional_coding(tmp_path, inter_weights, tiny_weights) -> None:
    photos, run = tmp_path / "photos", tmp_path / "run"
    photos.mkdir()
    for seed in range(2):
        Image.fromarray(smooth_image(140, 150, seed)).save(photos / f"p{seed}.png")
    args = ["--photos", photos, "--out", run, "--batch", "1", "--crop", "64", "--frames", "2"]
    args += ["--flow-steps", "0", "--motion-steps", "0", "--threads", "1", "--steps", "1"]
    args += ["--intra", tiny_weights, "--holdout-photos", "0", "--init", inter_weights]
    train_main([str(a) for a in [*args, "--conditional", "8"]])
    assert InterCoder(run / "model.safetensors").net.config.conditional == 8
    train_main([str(a) for a in [*args, "--out", tmp_path / "run2", "--flow", "search"]])
    assert InterCoder(tmp_path / "run2" / "model.safetensors").net.config.flow == "search"
    with pytest.raises(SystemExit, match="flow-steps"):
        train_main(
            [
                str(a)
                for a in [
                    *args,
                    "--out",
                    tmp_path / "run3",
                    "--flow",
                    "search",
                    "--flow-steps",
                    "5",
                ]
            ]
        )


def test_motion_warm_up_of_a_conditional_model_trains_the_motion_coder_alone() -> None:
    """Its prediction is context, not a picture: the warm-up aims at the plain warp."""
    model = conditional_tiny().with_flow("search").train()
    seq = torch.from_numpy(np.stack(moving_pair(64, 128))).permute(0, 3, 1, 2).float() / 255
    q = torch.tensor([3])
    loss, stats = motion_loss(model, seq.flip(0)[None], q, torch.tensor([0.01]), "soft", 0.5)
    loss.backward()
    assert all(p.grad is None for p in model.mc.parameters())
    assert all(p.grad is None for p in model.residual.parameters())
    assert sum(p.grad.abs().sum() for p in model.motion.parameters() if p.grad is not None) > 0
    assert stats["psnr"] == stats["prediction_psnr"] and stats["bpp"] > 0
