"""Size of every policy core: neurons, trainable parameters (conv head and core), synapses.

The numbers come from building each policy (``SteeringPolicy.parameter_counts``, what the
trainer logs and ``config.json`` stores under ``parameters``), so they cannot go stale: the
README's model table is :func:`markdown_table` and a test checks that it still is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from driving.model.policy import CORE_NAMES, PolicyConfig, SteeringPolicy

__all__ = ["markdown_table", "model_size", "policy_size"]


def policy_size(policy: SteeringPolicy) -> dict[str, Any]:
    """Size of a built policy.

    Returns:
        ``model`` (core name), ``units`` (neurons of a wired core, hidden units otherwise:
        LSTM state = 2 x units), ``synapses`` (a wired core's synapses, sensory ones included;
        None otherwise) and the trainable parameter counts ``conv_head``, ``core``,
        ``core_connected`` (the core's parameters that are real connections; the core's count
        for unmasked cores), ``readout``, ``total``.
    """
    counts = policy.parameter_counts()
    wiring = policy.wiring
    return {
        "model": policy.config.core,
        "units": int(wiring.units if wiring is not None else policy.core.output_size),
        "synapses": None if wiring is None else int(wiring.total_synapse_count),
        **counts,
        "core_connected": counts.get("core_connected", counts["core"]),
    }


def model_size(core: str, base: PolicyConfig | None = None) -> dict[str, Any]:
    """:func:`policy_size` of ``core`` on ``base``'s other settings (default config).

    The weights are initialised under a forked RNG, so asking does not move torch's seed.
    """
    config = dataclasses.replace(base or PolicyConfig(), core=core)
    with torch.random.fork_rng(devices=[]):
        return policy_size(SteeringPolicy(config))


def markdown_table(cores: Sequence[str] = CORE_NAMES, base: PolicyConfig | None = None) -> str:
    """The model table of the README: one row per core (default settings), trainable counts."""
    lines = [
        "| model | neurons / units | core parameters | of them connected | synapses "
        "| readout | conv head parameters |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for core in cores:
        s = model_size(core, base)
        synapses = "-" if s["synapses"] is None else f"{s['synapses']:,}"
        lines.append(
            f"| `{core}` | {s['units']} | {s['core']:,} | {s['core_connected']:,} | {synapses} "
            f"| {s['readout']:,} | {s['conv_head']:,} |"
        )
    return "\n".join(lines) + "\n"
