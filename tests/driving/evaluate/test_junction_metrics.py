"""Per-junction success on synthetic columns, its pooling, metrics.json and the tables."""

import numpy as np
import pytest

from driving.data.format import (
    COLLISION,
    COMMAND,
    INTERVENTION,
    JUNCTION,
    LANE_HALF_WIDTH_M,
    LATERAL_OFFSET_M,
)
from driving.evaluate.junction_metrics import (
    JunctionMetrics,
    junction_metrics,
    pool_junctions,
)
from driving.evaluate.metrics import MetricsError, episode_metrics
from driving.evaluate.report import (
    EXPERT,
    EpisodeResult,
    build_document,
    render_markdown,
    results_from_document,
)
from driving.evaluate.suites import EpisodeSpec
from sim.spec import Command

L, R, S = int(Command.LEFT), int(Command.RIGHT), int(Command.STRAIGHT)


def _columns(zones, n=100, commands=None):
    """Columns of an n-step episode; ``zones``: (junction index, first, last) per junction."""
    junction = np.full(n, -1)
    command = np.zeros(n, dtype=np.int64)
    for k, (index, first, last) in enumerate(zones):
        junction[first : last + 1] = index
        command[first : last + 1] = (commands or [L, R, S, L])[k]
    return {
        JUNCTION: junction,
        COMMAND: command,
        INTERVENTION: np.zeros(n, dtype=bool),
        COLLISION: np.zeros(n, dtype=bool),
        LATERAL_OFFSET_M: np.full(n, 0.2),
        LANE_HALF_WIDTH_M: np.full(n, 1.75),
    }


def test_each_junction_is_segmented_and_a_clean_pass_succeeds():
    cols = _columns([(0, 10, 20), (1, 40, 55), (2, 70, 80)])
    m = junction_metrics(cols, route_commands=(L, R, S))
    assert [(j.index, j.command, j.first_step, j.last_step) for j in m.passed] == [
        (0, "left", 10, 20),
        (1, "right", 40, 55),
        (2, "straight", 70, 80),
    ]
    assert all(j.success for j in m.passed) and m.not_reached == 0


def test_failures_intervention_collision_exit_outside_the_lane_and_ending_inside():
    cols = _columns([(0, 10, 20), (1, 30, 40), (2, 50, 60), (3, 90, 99)])
    cols[INTERVENTION][15] = True  # inside junction 0
    cols[INTERVENTION][25] = True  # between junctions: fails none
    cols[COLLISION][30] = True  # junction 1's first step
    cols[LATERAL_OFFSET_M][60] = -1.9  # junction 2's exit, beyond the 1.75 m half width
    cols[LATERAL_OFFSET_M][59] = 3.0  # before the exit: only the last step counts
    m = junction_metrics(cols, route_commands=(L, R, S, L, R))
    assert [j.failure for j in m.passed] == [
        "intervention",
        "collision",
        "left outside the lane",
        "ended inside",  # the episode's last step is inside junction 3
    ]
    assert m.not_reached == 1


def test_a_junction_cut_by_the_route_end_is_not_scored():
    cols = _columns([(0, 10, 20), (1, 90, 99)])
    ended = junction_metrics(cols, route_commands=(L, R))
    assert [j.failure for j in ended.passed] == [None, "ended inside"]
    done = junction_metrics(cols, route_commands=(L, R), route_completed=True)
    assert [j.index for j in done.passed] == [0] and done.not_reached == 1


def test_an_intervention_on_the_zone_edges_counts_and_one_just_outside_does_not():
    cols = _columns([(0, 10, 20), (1, 40, 50)])
    cols[INTERVENTION][[20, 39, 51]] = True
    assert [j.success for j in junction_metrics(cols).passed] == [False, True]


def test_an_index_reappearing_after_a_gap_is_one_junction():
    cols = _columns([(0, 10, 14)])
    cols[JUNCTION][18:21] = 0
    cols[COMMAND][18:21] = L
    (j,) = junction_metrics(cols, route_commands=(L,)).passed
    assert (j.first_step, j.last_step, j.success) == (10, 20, True)


def test_lane_keeping_episodes_and_old_rollouts_have_no_junction_metrics():
    assert junction_metrics({INTERVENTION: np.zeros(5)}) is None
    assert junction_metrics(_columns([])) is None
    assert pool_junctions([None, None]) is None
    # a route with junctions the episode never reached
    assert junction_metrics({}, route_commands=(L, R)).not_reached == 2
    assert junction_metrics(_columns([]), route_commands=(S,)).not_reached == 1


def test_bad_columns_are_named():
    cols = _columns([(0, 10, 20)])
    del cols[LANE_HALF_WIDTH_M]
    with pytest.raises(MetricsError, match="lane_half_width_m"):
        junction_metrics(cols)
    cols = _columns([(0, 10, 20)])
    cols[COMMAND][10] = 9
    with pytest.raises(MetricsError, match=r"not a sim\.spec\.Command"):
        junction_metrics(cols)
    with pytest.raises(MetricsError, match="route's is 'right'"):
        junction_metrics(_columns([(0, 10, 20)]), route_commands=(R,))
    cols = _columns([(0, 10, 20)])
    cols[INTERVENTION] = cols[INTERVENTION][:50]
    with pytest.raises(MetricsError, match="50 steps"):
        junction_metrics(cols)


def test_pooling_per_command():
    a = _columns([(0, 10, 20), (1, 40, 50), (2, 60, 70)])
    a[INTERVENTION][45] = True  # the right turn fails
    b = _columns([(0, 10, 20), (1, 40, 50)], commands=[L, L])
    b[LATERAL_OFFSET_M][50] = 2.0  # the second left fails
    pooled = pool_junctions(
        [junction_metrics(a, route_commands=(L, R, S)), None, junction_metrics(b)]
    )
    assert (pooled["n"], pooled["succeeded"]) == (5, 3)
    assert pooled["success_rate"] == pytest.approx(0.6)
    assert pooled["by_command"] == {
        "left": {"n": 3, "succeeded": 2, "success_rate": pytest.approx(2 / 3)},
        "right": {"n": 1, "succeeded": 0, "success_rate": 0.0},
        "straight": {"n": 1, "succeeded": 1, "success_rate": 1.0},
    }
    assert pooled["failures"]["intervention"] == 1
    assert pooled["failures"]["left outside the lane"] == 1
    assert pooled["not_reached"] == 0 and pooled["route_junctions"] == 5


def _metrics(n=200):
    t = np.arange(n) * 0.05
    return episode_metrics(
        t_s=t,
        command=np.zeros(n),
        lateral_offset_m=np.full(n, 0.1),
        heading_error_rad=np.zeros(n),
        progress_m=10 * t,
        intervention=np.zeros(n, dtype=bool),
        route_length_m=100.0,
    )


def _results():
    out = []
    for model in (EXPERT, "cmd"):
        for condition, town in (("train towns", "village"), ("unseen towns", "old_town")):
            cols = _columns([(0, 10, 20), (1, 40, 50)])
            if model == "cmd" and town == "old_town":
                cols[INTERVENTION][45] = True
            spec = EpisodeSpec("junctions", condition, town, "clear", 0, 7001, 100.0)
            junctions = junction_metrics(cols, route_commands=(L, R))
            out.append(EpisodeResult(model, spec, _metrics(), None, junctions))
    return out


MODELS = [{"name": EXPERT, "checkpoint": None}, {"name": "cmd", "checkpoint": "/ck"}]


def test_metrics_json_keeps_junctions_per_episode_and_pools_them_per_group():
    doc = build_document(_results(), models=MODELS, sim="builtin", mode="intervention", suite="j")
    assert doc["episodes"][0]["junctions"]["passed"][1]["command"] == "right"
    rows = {(r["model"], r["group"], r["key"]): r for r in doc["summary"]}
    assert rows[("cmd", "suite", None)]["junctions"]["success_rate"] == pytest.approx(0.75)
    assert rows[("cmd", "town", "old_town")]["junctions"]["by_command"]["right"] == {
        "n": 1,
        "succeeded": 0,
        "success_rate": 0.0,
    }
    assert rows[(EXPERT, "condition", "unseen towns")]["junctions"]["success_rate"] == 1.0
    back = results_from_document(doc)
    assert [r.junctions for r in back] == [r.junctions for r in _results()]
    assert isinstance(back[0].junctions, JunctionMetrics)


def test_lane_keeping_results_keep_their_form():
    spec = EpisodeSpec("train-towns", "clean", "hills", "clear", 0, 7001, 100.0)
    doc = build_document(
        [EpisodeResult(EXPERT, spec, _metrics())],
        models=MODELS[:1],
        sim="builtin",
        mode="intervention",
        suite="train-towns",
    )
    assert "junctions" not in doc["episodes"][0]
    assert all("junctions" not in r for r in doc["summary"])
    assert "Junction success" not in render_markdown(doc)


def test_report_tables_success_per_command_with_counts():
    doc = build_document(_results(), models=MODELS, sim="builtin", mode="intervention", suite="j")
    md = render_markdown(doc)
    assert "Junction success" in md
    assert "| expert | train towns | 100 % (2/2) | 100 % (1/1) | 100 % (1/1) | – | 0 | – |" in md
    assert "| cmd | unseen towns | 50 % (1/2) | 100 % (1/1) | 0 % (0/1) | – | 0 |" in md
    assert "| cmd | town old_town | 50 % (1/2) |" in md
    assert "intervention 1" in md
