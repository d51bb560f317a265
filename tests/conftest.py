"""Shared test fixtures."""

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models on a shared 2-core machine: intra-op threads only contend (10-100x slower)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
