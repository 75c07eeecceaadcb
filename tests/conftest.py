"""Fixtures every test shares: one torch thread, the tiny recorded dataset, the slow marker."""

import pytest
import torch

from tests.driving.train.tiny import write_tiny_dataset


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: an end-to-end test that takes several seconds (part of the default run)"
    )


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Small tensors: intra-op threads only add contention on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Three tiny episodes (``tests/driving/train/tiny.py``); tests must not modify them."""
    return write_tiny_dataset(tmp_path_factory.mktemp("data"))
