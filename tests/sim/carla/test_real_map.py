"""The env and expert on real OpenDRIVE geometry (the real wheel's offline ``carla.Map``).

The stand-in server serves the real library's map, so waypoints, lane widths and CARLA's
left-handed frame are the real ones; a sign error in the conversions would make the expert
steer the wrong way in the bends. Skipped when the ``carla`` wheel is not installed.
"""

from __future__ import annotations

import importlib
import math
import sys

import numpy as np
import pytest

import sim
from driving.data import episodes as ep
from driving.rollout.episode import run_episode
from tests.sim.carla import standin

PIECES = ((40.0, 0.0), (80.0, 0.025), (90.0, -0.03), (120.0, 0.0))
"""(length m, OpenDRIVE curvature 1/m): straight, left arc, right arc, straight."""


def bends_xodr(start_hdg: float = 0.3) -> str:
    """An OpenDRIVE road of :data:`PIECES` with one 3.5 m driving lane each way."""
    x = y = s = 0.0
    hdg = start_hdg
    geometries = []
    for length, k in PIECES:
        shape = "<line/>" if k == 0.0 else f'<arc curvature="{k}"/>'
        geometries.append(
            f'<geometry s="{s}" x="{x:.9f}" y="{y:.9f}" hdg="{hdg:.9f}" length="{length}">'
            f"{shape}</geometry>"
        )
        if k == 0.0:
            x, y = x + length * math.cos(hdg), y + length * math.sin(hdg)
        else:
            h1 = hdg + k * length
            x, y = x + (math.sin(h1) - math.sin(hdg)) / k, y - (math.cos(h1) - math.cos(hdg)) / k
            hdg = h1
        s += length
    lane = (
        '<lane id="{}" type="driving" level="false"><link/>'
        '<width sOffset="0" a="3.5" b="0" c="0" d="0"/></lane>'
    )
    return f"""<?xml version="1.0" standalone="yes"?>
<OpenDRIVE>
  <header revMajor="1" revMinor="4" name="bends" version="1.00"/>
  <road name="r" length="{s}" id="1" junction="-1">
    <link/>
    <planView>{"".join(geometries)}</planView>
    <lanes><laneSection s="0.0">
      <left>{lane.format(1)}</left>
      <center><lane id="0" type="none" level="false"/></center>
      <right>{lane.format(-1)}</right>
    </laneSection></lanes>
  </road>
</OpenDRIVE>
"""


@pytest.fixture
def real_map_server(monkeypatch):
    try:
        real = importlib.import_module("carla")
    except ImportError:
        pytest.skip("the real carla wheel is not installed")
    monkeypatch.setitem(sys.modules, "carla", standin)
    srv = standin.Server(
        port=23000, town="bends", real_map=standin.RealMap(real, "bends", bends_xodr())
    )
    yield srv
    srv.stop()


def test_expert_follows_real_opendrive_bends_both_ways(real_map_server):
    srv = real_map_server
    kw = {"port": srv.port, "town": "bends", "timeout_s": 2.0, "settle_time_s": 0.2}
    with sim.make_env("carla", **kw, route_length_m=180.0, target_speed_mps=7.0) as env:
        log = run_episode(env, sim.make_expert(env), seed=0)
        route = env.route
    assert log.outcome == "route_complete", log.summary()
    curv = log.columns[ep.ROAD_CURVATURE]
    # The right lane (lane -1) of a left arc of radius 40 has radius 41.75 (positive = left),
    # of a right arc of radius 33.3 has radius 31.58 (negative).
    assert curv.max() == pytest.approx(1 / 41.75, rel=0.05)
    assert curv.min() == pytest.approx(-1 / 31.58, rel=0.05)
    assert np.abs(log.columns[ep.LATERAL_OFFSET_M]).max() < 0.3
    # The expert's command follows the bends with the same sign.
    cmd = log.columns[ep.CURVATURE_EXPERT]
    assert np.corrcoef(cmd, curv)[0, 1] > 0.9
    assert route.half_width.min() == pytest.approx(1.75)
    assert srv.live_actors() == [] and not srv.settings.synchronous_mode
