"""codec.determinism: networks of decoders on one thread each, tiles side by side."""

from __future__ import annotations

import threading

import pytest
import torch

from codec.determinism import decoding, map_one_thread, one_thread


@pytest.fixture
def threads():
    """Restore torch's thread count and oneDNN switch after the test."""
    before = torch.get_num_threads(), torch.backends.mkldnn.enabled
    yield
    torch.set_num_threads(before[0])
    torch.backends.mkldnn.enabled = before[1]


def test_one_thread_restores_the_settings(threads):
    torch.set_num_threads(2)
    torch.backends.mkldnn.enabled = False
    with pytest.raises(RuntimeError), one_thread():
        assert torch.get_num_threads() == 1 and torch.backends.mkldnn.enabled and decoding()
        raise RuntimeError
    assert torch.get_num_threads() == 2 and not torch.backends.mkldnn.enabled
    assert not decoding()


def test_tiles_in_order_and_independent_of_the_thread_count(threads):
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 3, 3)
    )
    tiles = [torch.rand(1, 3, 40 + i, 56) for i in range(5)]

    def run(x: torch.Tensor) -> torch.Tensor:
        assert not torch.is_grad_enabled() and torch.get_num_threads() == 1
        return net(x)

    outs = {}
    for n in (1, 2):
        torch.set_num_threads(n)
        outs[n] = list(map_one_thread(run, tiles))
        assert torch.get_num_threads() == n
    assert [o.shape[2] for o in outs[2]] == [38 + i for i in range(5)]  # in order
    assert all(torch.equal(a, b) for a, b in zip(outs[1], outs[2], strict=True))


def test_blocks_in_several_threads(threads):
    torch.set_num_threads(2)
    torch.backends.mkldnn.enabled = False
    inside, release = threading.Barrier(3), threading.Event()  # 2 workers and this thread
    seen = []

    def hold() -> None:
        with one_thread():
            inside.wait(timeout=10)
            seen.append((torch.get_num_threads(), torch.backends.mkldnn.enabled))
            release.wait(timeout=10)

    workers = [threading.Thread(target=hold) for _ in range(2)]
    for w in workers:
        w.start()
    inside.wait(timeout=10)
    assert decoding() and torch.backends.mkldnn.enabled  # both blocks running
    release.set()
    for w in workers:
        w.join(timeout=10)
    assert seen == [(1, True), (1, True)]
    assert not decoding() and not torch.backends.mkldnn.enabled
    assert torch.get_num_threads() == 2
