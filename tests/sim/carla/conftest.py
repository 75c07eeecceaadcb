"""Fixtures: the stand-in ``carla`` module registered as ``carla`` and a stand-in server."""

from __future__ import annotations

import itertools
import sys

import pytest

from tests.sim.carla import standin

_ports = itertools.count(21000, 10)


@pytest.fixture
def fake_carla(monkeypatch):
    """The stand-in module, importable as ``carla`` for the duration of the test."""
    monkeypatch.setitem(sys.modules, "carla", standin)
    return standin


@pytest.fixture
def server(fake_carla):
    """A stand-in server on a fresh port (``server.port``), stopped after the test."""
    srv = standin.Server(port=next(_ports), stamp_frames=True)
    yield srv
    srv.stop()


@pytest.fixture
def env_kwargs(server):
    """Arguments for a quick CARLA env on the stand-in server."""
    return {"port": server.port, "timeout_s": 1.0, "settle_time_s": 0.2, "route_length_m": 60.0}
