"""Shared fixtures of the training tests: one torch thread, the tiny dataset built once."""

import pytest

from tests.driving.model.conftest import _one_thread  # noqa: F401  (autouse here too)
from tests.driving.train.tiny import write_tiny_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Three tiny episodes (``tests/driving/train/tiny.py``); tests must not modify them."""
    return write_tiny_dataset(tmp_path_factory.mktemp("data"))
