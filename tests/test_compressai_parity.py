"""The codec's GDN and factorized density compute exactly what CompressAI's ``GDN`` and
``EntropyBottleneck`` compute, from the same state dicts: weights move between the two, and
the shipped weights (trained with CompressAI's classes) decode as before."""

from __future__ import annotations

import pytest
import torch

from codec.entropy_models import FactorizedDensity
from codec.layers import GDN

compressai = pytest.importorskip("compressai")
from compressai.entropy_models import EntropyBottleneck  # noqa: E402
from compressai.layers import GDN as CompressaiGDN  # noqa: E402


def perturbed(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """``module`` with every parameter moved off its initial value (some below bounds)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.3)
    return module


def same_state(ours: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Load ``theirs``' state into ``ours`` (CompressAI's coding caches included) and check
    that the names match both ways."""
    state = theirs.state_dict()
    ours.load_state_dict(state)
    caches = {k for k in state if k.startswith("_")}
    assert set(ours.state_dict()) == set(state) - caches


@pytest.mark.parametrize("inverse", [False, True])
def test_gdn_matches_compressai(inverse):
    theirs = perturbed(CompressaiGDN(6, inverse=inverse), seed=1)
    ours = GDN(6, inverse=inverse)
    same_state(ours, theirs)
    x = torch.randn(2, 6, 9, 7, requires_grad=True)
    y_ours, y_theirs = ours(x), theirs(x)
    assert torch.equal(y_ours, y_theirs)
    g_ours = torch.autograd.grad(y_ours.square().sum(), (x, ours.beta, ours.gamma))
    g_theirs = torch.autograd.grad(y_theirs.square().sum(), (x, theirs.beta, theirs.gamma))
    assert all(torch.equal(a, b) for a, b in zip(g_ours, g_theirs, strict=True))


def test_fresh_layers_match_compressai():
    """Same initial values, and the same random numbers drawn for them."""
    torch.manual_seed(3)
    theirs = EntropyBottleneck(5)
    torch.manual_seed(3)
    ours = FactorizedDensity(5)
    for (name, a), (_, b) in zip(
        ours.state_dict().items(),
        ((k, v) for k, v in theirs.state_dict().items() if not k.startswith("_")),
        strict=True,
    ):
        assert torch.equal(a, b), name
    assert torch.equal(GDN(4).gamma, CompressaiGDN(4).gamma)


def test_factorized_density_matches_compressai():
    theirs = perturbed(EntropyBottleneck(5), seed=2)
    ours = FactorizedDensity(5)
    same_state(ours, theirs)
    values = torch.linspace(-20, 20, 41).view(1, 1, -1).expand(5, 1, -1)
    for a, b in zip(ours.likelihood(values), theirs._likelihood(values), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(ours.loss(), theirs.loss())
    z = torch.randn(2, 5, 4, 3) * 4
    ours.train(), theirs.train()
    torch.manual_seed(4)
    got = ours(z)
    torch.manual_seed(4)
    want = theirs(z)
    assert all(torch.equal(a, b) for a, b in zip(got, want, strict=True))
    ours.eval()  # integers (CompressAI would round to offsets from its medians)
    z_hat, lik = ours(z)
    flat = torch.round(z).permute(1, 0, 2, 3).reshape(5, 1, -1)
    expected = theirs._likelihood(flat)[0].clamp_min(1e-9).reshape(5, 2, 4, 3)
    assert torch.equal(z_hat, torch.round(z)) and torch.equal(lik, expected.permute(1, 0, 2, 3))
