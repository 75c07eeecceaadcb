"""Liquid time-constant (LTC) network on an NCP wiring, solved as an ODE (for comparison).

The LTC neuron (Hasani et al. 2021, "Liquid time-constant networks", AAAI; used as the NCP
neuron model in Lechner et al. 2020, "Neural circuit policies enabling auditable autonomy",
Nature Machine Intelligence) is the membrane equation

    cm_j dv_j/dt = gleak_j (vleak_j - v_j)
                   + sum_i w_ij sigmoid(sigma_ij (v_i - mu_ij)) (erev_ij - v_j)

summed over the synapses i -> j of the wiring (sensory inputs with their own ``sensory_*``
parameters). One step of elapsed time ``t`` is ``K = ode_unfolds`` (default 6) fused
semi-implicit Euler steps of size ``t / K``, as in the NCP paper and ncps 1.0.1::

    sensory (once per step, input held):  ws_ij = w+_ij sigmoid(sigma_ij (x_i - mu_ij)) m_ij
    repeat K times:   wa_ij = w+_ij sigmoid(sigma_ij (v_i - mu_ij)) m_ij
        v_j <- (cm+_j / (t/K) v_j + gleak+_j vleak_j + sum_i wa_ij erev_ij + sum_i ws_ij serev_ij)
               / (cm+_j / (t/K) + gleak+_j + sum_i wa_ij + sum_i ws_ij + epsilon)

``+`` is softplus when ``implicit_param_constraints`` (the ncps ``LTC`` wrapper's default,
and ours), else the identity (then call ``apply_weight_constraints`` after each optimiser
step). ``m`` are the wiring masks (buffers), ``erev`` is initialised from the synapse
polarity (+1/-1) and trained. Inputs are mapped ``x * input_w + input_b`` ("affine") and
outputs ``v_motor * output_w + output_b``.

Neuron order is the wiring's state order (inter, command, motor; ``driving/model/wiring.py``);
ncps's LTC keeps its state in ncps ids (motor first), and
``driving.model.ncps_interop.from_ncps`` permutes for you. Interface, elapsed time and time
loop come from ``driving.model.cores.SequenceCore``: ``forward(x (B, T, S), elapsed, h0)
-> (y (B, T, M), states (B, T, N))`` and ``step(x (B, S), elapsed, h) -> (y (B, M), h)``,
unrolling exactly to ``forward``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from driving.model.cores import CoreError, WiredCore
from driving.model.wiring import NCP

__all__ = ["LTC"]

INPUT_MAPPINGS = ("affine", "linear", "none")

# ncps 1.0.1's uniform initialisation ranges.
INIT_RANGES: dict[str, tuple[float, float]] = {
    "gleak": (0.001, 1.0),
    "vleak": (-0.2, 0.2),
    "cm": (0.4, 0.6),
    "sigma": (3.0, 8.0),
    "mu": (0.3, 0.8),
    "w": (0.001, 1.0),
    "sensory_sigma": (3.0, 8.0),
    "sensory_mu": (0.3, 0.8),
    "sensory_w": (0.001, 1.0),
}


class LTC(WiredCore):
    """ODE-based LTC on an NCP wiring (semi-implicit Euler, ``ode_unfolds`` per step).

    Args:
        input_size: Sensory inputs S (the wiring is built for it).
        wiring: An ``NCP``/``AutoNCP`` from ``driving.model.wiring``.
        ode_unfolds: Euler sub-steps per step (6 as in the NCP paper).
        epsilon: Added to the denominator.
        input_mapping: "affine" (``x w + b``), "linear" (``x w``) or "none".
        output_mapping: "affine", "linear" or "none" on the motor neurons.
        implicit_param_constraints: Softplus on w, sensory_w, cm, gleak (True) or the
            identity (False; then call ``apply_weight_constraints`` after optimiser steps).

    Parameters (state order, matrices ``[src, dst]``): ``gleak vleak cm`` (N,), ``sigma mu w
    erev`` (N, N), ``sensory_sigma sensory_mu sensory_w sensory_erev`` (S, N), ``input_w
    input_b`` (S,), ``output_w output_b`` (M,); buffers ``sparsity_mask`` (N, N) and
    ``sensory_sparsity_mask`` (S, N).
    """

    def __init__(
        self,
        input_size: int,
        wiring: NCP,
        ode_unfolds: int = 6,
        epsilon: float = 1e-8,
        input_mapping: str = "affine",
        output_mapping: str = "affine",
        implicit_param_constraints: bool = True,
    ) -> None:
        super().__init__(input_size, cache_weights=True)
        if not isinstance(wiring, NCP):
            raise CoreError(
                f"wiring must be a driving.model.wiring.NCP, got {type(wiring).__name__}"
            )
        if ode_unfolds < 1:
            raise CoreError(f"ode_unfolds must be >= 1, got {ode_unfolds}")
        for name, value in (("input_mapping", input_mapping), ("output_mapping", output_mapping)):
            if value not in INPUT_MAPPINGS:
                raise CoreError(f"{name} must be one of {INPUT_MAPPINGS}, got {value!r}")
        wiring.build(input_size)
        self.wiring = wiring
        self.ode_unfolds, self.epsilon = ode_unfolds, epsilon
        self.input_mapping, self.output_mapping = input_mapping, output_mapping
        self.implicit_param_constraints = implicit_param_constraints
        n, s, m = wiring.units, input_size, wiring.motor_neurons
        adj = torch.as_tensor(wiring.state_adjacency, dtype=torch.float32)  # (N, N)
        sens = torch.as_tensor(wiring.state_sensory_adjacency, dtype=torch.float32)  # (S, N)

        def uniform(name: str, *shape: int) -> nn.Parameter:
            lo, hi = INIT_RANGES[name]
            return nn.Parameter(torch.rand(*shape) * (hi - lo) + lo)

        self.gleak = uniform("gleak", n)
        self.vleak = uniform("vleak", n)
        self.cm = uniform("cm", n)
        self.sigma = uniform("sigma", n, n)
        self.mu = uniform("mu", n, n)
        self.w = uniform("w", n, n)
        self.erev = nn.Parameter(adj.clone())  # polarity -1/0/+1
        self.sensory_sigma = uniform("sensory_sigma", s, n)
        self.sensory_mu = uniform("sensory_mu", s, n)
        self.sensory_w = uniform("sensory_w", s, n)
        self.sensory_erev = nn.Parameter(sens.clone())
        self.register_buffer("sparsity_mask", adj.abs())
        self.register_buffer("sensory_sparsity_mask", sens.abs())
        self.input_w = nn.Parameter(torch.ones(s)) if input_mapping != "none" else None
        self.input_b = nn.Parameter(torch.zeros(s)) if input_mapping == "affine" else None
        self.output_w = nn.Parameter(torch.ones(m)) if output_mapping != "none" else None
        self.output_b = nn.Parameter(torch.zeros(m)) if output_mapping == "affine" else None

    def masked_parameter_count(self) -> int:
        """Trainable entries that are real connections (masked-out synapse entries excluded).

        Each synapse has its ``sigma mu w erev`` (sensory synapses their ``sensory_*``); the
        per-neuron and mapping parameters all count.
        """
        masks = {"": self.sparsity_mask, "sensory_": self.sensory_sparsity_mask}
        total = 0
        for name, p in self.named_parameters():
            prefix = "sensory_" if name.startswith("sensory_") else ""
            per_synapse = name.removeprefix(prefix) in ("sigma", "mu", "w", "erev")
            total += int(masks[prefix].sum()) if per_synapse else p.numel()
        return total

    def _positive(self, p: Tensor) -> Tensor:
        return nn.functional.softplus(p) if self.implicit_param_constraints else p

    def apply_weight_constraints(self) -> None:
        """Clip w, sensory_w, cm, gleak at 0 (only needed without implicit constraints)."""
        if not self.implicit_param_constraints:
            with torch.no_grad():
                for p in (self.w, self.sensory_w, self.cm, self.gleak):
                    p.clamp_(min=0.0)

    def _weights(self) -> dict[str, Tensor]:
        """Per-call constants: positive, masked synapse weights and their erev products."""
        w = self._positive(self.w) * self.sparsity_mask  # (N, N)
        sw = self._positive(self.sensory_w) * self.sensory_sparsity_mask  # (S, N)
        gleak = self._positive(self.gleak)
        return {
            "w_erev": torch.stack([w * self.erev, w]),  # (2, N, N): numerator, denominator
            "sw_erev": torch.stack([sw * self.sensory_erev, sw]),  # (2, S, N)
            "cm": self._positive(self.cm),  # (N,)
            "gleak": gleak,
            "leak": gleak * self.vleak,  # (N,)
        }

    def _update(self, x: Tensor, ts: Tensor, v: Tensor, w: dict[str, Tensor]) -> Tensor:
        """One step: x (B, S), ts (B, 1), v (B, N) -> new v (B, N)."""
        if self.input_w is not None:
            x = x * self.input_w
        if self.input_b is not None:
            x = x + self.input_b
        # Sensory synapses, input held over the unfolds: (B, S, N) -> (B, 2, N).
        act = torch.sigmoid(self.sensory_sigma * (x.unsqueeze(-1) - self.sensory_mu))
        sens = (act.unsqueeze(1) * w["sw_erev"]).sum(2)  # (B, 2, S, N) -> (B, 2, N)
        cm_t = w["cm"] / (ts / self.ode_unfolds)  # (B, N): cm / dt
        num_const = w["leak"] + sens[:, 0]  # (B, N)
        den_const = cm_t + w["gleak"] + sens[:, 1] + self.epsilon  # (B, N)
        for _ in range(self.ode_unfolds):
            act = torch.sigmoid(self.sigma * (v.unsqueeze(-1) - self.mu))  # (B, N, N)
            syn = (act.unsqueeze(1) * w["w_erev"]).sum(2)  # (B, 2, N)
            v = (torch.addcmul(num_const, cm_t, v) + syn[:, 0]) / (den_const + syn[:, 1])
        return v

    def _readout(self, v: Tensor) -> Tensor:
        y = v[..., -self.output_size :]  # motor neurons are the last M states
        if self.output_w is not None:
            y = y * self.output_w
        if self.output_b is not None:
            y = y + self.output_b
        return y
