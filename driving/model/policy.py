"""The steering policy: camera frames -> conv head -> recurrent core -> path curvature.

::

    frames uint8 (B, T, H, W, 3)
      -> Preprocessor.prepare      (B*T, 3, 78, 200) in [0, 1]
      -> [augmentation, training only]
      -> Preprocessor.normalize    per-image standardisation
      -> ConvHead                  (B*T, 32) features (perception/encoder.py, NCP 2020)
      -> core                      (B, T, M) outputs, (B, T, N) neuron states
      -> readout Linear(M -> 1)    scaled command; / label_scale -> curvature in 1/m

The pipeline is written once, as two stages: :meth:`SteeringPolicy.encode` (frames -> conv
features, the first four lines) and :meth:`SteeringPolicy.decode` (features -> curvature and
neuron states, the last two). Training windows (``forward``), the closed-loop step
(``step_frames``, ``step``, ``act``), the ONNX export, the saliency replay and the TensorBoard
figures (``driving.viz``) and ``benchmarks/policy.py`` all go through them.

With a single motor neuron (cfc-ncp, ltc-ncp) the readout starts as the identity (weight 1,
bias 0), so the motor neuron's state is the scaled command from the first step (a random
initial gain in (-1, 1) made the wired cores learn several times slower in our tests). A CfC
state is bounded by 1, so ``label_scale`` (default 10) also sets how sharp a bend the
cfc-ncp can command: +-0.1 1/m at the start of training.

Cores, chosen by name (``PolicyConfig.core``), all on the same conv head:

* ``cfc-ncp`` (default): the NCP wiring of the 2020 paper (12 inter, 6 command, 1 motor =
  19 neurons, seed 20190120) run by our wiring-faithful ``driving.model.cfc.WiredCfC``.
* ``cfc-ncp-random`` / ``cfc-ncp-full``: controls of the wiring on the same neurons and
  layers: the NCP's synapse count per block placed at random, or every allowed synapse
  (``driving.model.wiring_variants``), run by the same ``WiredCfC``.
* ``cfc-dense``: 19 fully connected CfC neurons (``driving.model.cfc.CfC``, no backbone).
* ``ltc-ncp``: the ODE-based LTC on the same NCP wiring (``driving.model.ltc``).
* ``lstm`` / ``gru``: discrete-time baselines (64 units, as the paper's LSTM-64; the LSTM's
  forget-gate bias starts at 1 and its cell state is clipped to +-10 as in the NCP code).
* ``lstm-19`` / ``gru-19``: the same with as many units as the NCP has neurons (19), read
  out the same way (a Linear from the hidden state).
* ``cnn``: no memory; the features go through one hidden ReLU layer.

Time is real: the continuous-time cores (CfC, LTC) take the elapsed time since the previous
frame, ``dt_s / time_scale_s``, so with the default ``time_scale_s = 0.05`` one step at
20 Hz is one unit of core time (what ncps assumes when no timespans are given). In the closed
loop the elapsed time is the difference of the observations' ``t_s``; the first frame of an
episode uses ``first_step_dt_s``, as the training windows do (``driving.data.windows``). The
discrete cores (LSTM, GRU, CNN) ignore elapsed time: they assume the training rate, which is
exactly what the control-rate evaluation suite probes.

State is explicit and starts at zero for every training window and every episode; in the
closed loop it is carried through the whole episode. Every neuron's state is returned
(``states`` of :meth:`SteeringPolicy.forward`, ``PolicyState.h`` in the closed loop), in the
core's state order, named by :attr:`SteeringPolicy.neuron_names`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Any, Literal, get_args

import numpy as np
import torch
import tyro
from torch import Tensor, nn

from driving.model.cfc import CfC, WiredCfC
from driving.model.command import (
    NUM_COMMANDS,
    BranchReadout,
    CommandEmbedding,
    CommandInput,
    check_commands,
    observed_command,
)
from driving.model.cores import FeedForwardCore, GRUCore, LSTMCore
from driving.model.ltc import LTC
from driving.model.wiring import NCP
from driving.model.wiring_variants import WIRING_VARIANTS
from liquid_drive.errors import LiquidDriveError
from perception.encoder import ConvHead, ConvHeadConfig
from perception.preprocess import Preprocessor, PreprocessSpec

logger = logging.getLogger(__name__)

CoreName = Literal[
    "cfc-ncp", "cfc-ncp-random", "cfc-ncp-full", "cfc-dense", "ltc-ncp",
    "lstm", "lstm-19", "gru", "gru-19", "cnn",
]  # fmt: skip
CORE_NAMES: tuple[str, ...] = get_args(CoreName)
CHUNK_FRAMES = 64
"""Frames per chunk through the conv head in :meth:`SteeringPolicy.encode` (memory reuse)."""
NCP_BUDGET = 19
"""Neurons of the NCP of the 2020 paper (12 inter + 6 command + 1 motor)."""
NCP_SIZED = ("cfc-ncp", "cfc-ncp-random", "cfc-ncp-full", "ltc-ncp", "lstm-19", "gru-19")
"""Cores whose size is the NCP wiring's neuron count."""
HIDDEN_GROUP = "hidden"
"""Neuron group of cores without named neurons (as ``driving.viz.layout.HIDDEN``)."""


class PolicyConfigError(LiquidDriveError, ValueError):
    """A policy configuration that is inconsistent (the message shows the bad value)."""


class PolicyError(LiquidDriveError, RuntimeError):
    """A policy used in a way its contract forbids (bad observation, time going backwards)."""


@dataclass(frozen=True)
class PolicyConfig:
    """Everything needed to rebuild a policy; stored in ``config.json`` of a checkpoint."""

    core: Annotated[CoreName, tyro.conf.arg(name="model", prefix_name=False)] = "cfc-ncp"
    """Recurrent core: cfc-ncp, cfc-ncp-random, cfc-ncp-full, cfc-dense, ltc-ncp, lstm, lstm-19,
    gru, gru-19 or cnn (no memory)."""
    preprocess: PreprocessSpec = field(default_factory=PreprocessSpec)
    """Camera preprocessing (crop, resize, normalisation), identical in training and driving."""
    conv: ConvHeadConfig = field(default_factory=ConvHeadConfig)
    """Conv head shape (default: the NCP paper's, 32 features)."""
    inter_neurons: int = 12
    """NCP wiring (cfc-ncp*, ltc-ncp; lstm-19 and gru-19 match its neuron count): inter neurons."""
    command_neurons: int = 6
    """NCP wiring: command neurons."""
    sensory_fanout: int = 6
    """NCP wiring: inter neurons each sensory feature projects to."""
    inter_fanout: int = 4
    """NCP wiring: command neurons each inter neuron projects to."""
    recurrent_command_synapses: int = 6
    """NCP wiring: command -> command synapses drawn."""
    motor_fanin: int = 6
    """NCP wiring: command neurons feeding the motor neuron."""
    wiring_seed: int = 20190120
    """NCP wiring seed (20190120: the 2020 paper's driving network)."""
    cfc_mode: Literal["default", "no_gate", "pure"] = "default"
    """CfC variant (cfc-ncp, cfc-dense)."""
    dense_units: int = 19
    """cfc-dense: number of fully connected CfC neurons."""
    rnn_units: int = 64
    """lstm, gru: hidden units (lstm-19, gru-19: the NCP's neurons, inter + command + 1)."""
    lstm_cell_clip: float = 10.0
    """lstm: the cell state is clipped to +- this value (NCP code: 10)."""
    cnn_hidden_units: int = 64
    """cnn: width of the hidden ReLU layer between the features and the readout."""
    label_scale: float = 10.0
    """Network output units per 1/m of curvature (the net regresses curvature * scale).

    It sets the range of a single motor neuron: a CfC state lies in (-1, 1), so with the
    identity readout the command starts within +-1/label_scale 1/m. 10 puts the tightest
    curvatures a car meets here (0.04-0.06 1/m: 20 m bends, recoveries) at half that range;
    at 100 the cfc-ncp's readout gain only grew to 2.7 in training, capping it at 0.027 1/m
    (a 37 m radius), and it left the 25 m bends of unseen towns (see the README's results)."""
    time_scale_s: float = 0.05
    """Seconds of real time per unit of core time: elapsed input = dt_s / time_scale_s."""
    first_step_dt_s: float = 0.05
    """Elapsed time assumed for an episode's first frame, s (the training rate's interval)."""
    command_input: CommandInput = "none"
    """How the route command (``sim.spec.Command``) enters (``driving.model.command``): none
    (the policy does not see it), embed (a learned 4 x F embedding added to the conv features)
    or branch (one output head per command, the command selects; the NCPs get 4 motor neurons,
    so inter + command neurons must leave room in the 19-neuron budget: 10 + 5 + 4)."""

    def __post_init__(self) -> None:
        if self.core not in CORE_NAMES:
            raise PolicyConfigError(f"core must be one of {CORE_NAMES}, got {self.core!r}")
        if (self.preprocess.output_height_px, self.preprocess.output_width_px) != (
            self.conv.input_height_px,
            self.conv.input_width_px,
        ):
            raise PolicyConfigError(
                f"preprocessing outputs {self.preprocess.output_height_px}x"
                f"{self.preprocess.output_width_px} but the conv head takes "
                f"{self.conv.input_height_px}x{self.conv.input_width_px}"
            )
        for name in ("dense_units", "rnn_units", "cnn_hidden_units"):
            if getattr(self, name) < 1:
                raise PolicyConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("label_scale", "time_scale_s", "first_step_dt_s", "lstm_cell_clip"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise PolicyConfigError(f"{name} must be a positive number, got {v}")
        if self.command_input not in ("none", "embed", "branch"):
            raise PolicyConfigError(
                f"command_input must be none, embed or branch, got {self.command_input!r}"
            )
        units = self.inter_neurons + self.command_neurons + self.motor_neurons
        if self.command_input == "branch" and self.core in NCP_SIZED and units > NCP_BUDGET:
            raise PolicyConfigError(
                f"{self.core} with command_input=branch: {self.inter_neurons} inter + "
                f"{self.command_neurons} command + {self.motor_neurons} motor = {units} neurons, "
                f"over the NCP's {NCP_BUDGET}; pass --policy.inter-neurons 10 "
                "--policy.command-neurons 5 --policy.motor-fanin 5"
            )
        if self.cfc_mode not in ("default", "no_gate", "pure"):
            raise PolicyConfigError(
                f"cfc_mode must be default, no_gate or pure, got {self.cfc_mode!r}"
            )

    @property
    def motor_neurons(self) -> int:
        """Motor neurons of the NCP wiring: one per command for branch, else 1."""
        return NUM_COMMANDS if self.command_input == "branch" else 1

    def wiring(self) -> NCP:
        """The NCP wiring these arguments describe (built for the conv head's features).

        For cfc-ncp-random and cfc-ncp-full, that NCP's control wiring instead.
        """
        w = NCP(
            inter_neurons=self.inter_neurons,
            command_neurons=self.command_neurons,
            motor_neurons=self.motor_neurons,
            sensory_fanout=self.sensory_fanout,
            inter_fanout=self.inter_fanout,
            recurrent_command_synapses=self.recurrent_command_synapses,
            motor_fanin=self.motor_fanin,
            seed=self.wiring_seed,
        )
        if self.core in WIRING_VARIANTS:
            w = WIRING_VARIANTS[self.core](w)
        w.build(self.conv.num_features)
        return w

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        d = asdict(self)
        d["preprocess"] = self.preprocess.to_dict()
        d["conv"] = self.conv.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PolicyConfig:
        """Inverse of :meth:`to_dict`; unknown or missing keys are an error.

        A config without ``command_input`` (written before route commands) reads as ``none``.
        """
        d = {"command_input": "none", **d}
        names = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(d) - names), sorted(names - set(d))
        if unknown or missing:
            raise PolicyConfigError(f"policy config keys: unknown {unknown}, missing {missing}")
        d = dict(d)
        d["preprocess"] = PreprocessSpec.from_dict(d["preprocess"])
        d["conv"] = ConvHeadConfig.from_dict(d["conv"])
        return cls(**d)


def _hidden_names(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def _rnn_units(c: PolicyConfig) -> int:
    """Hidden units of the LSTM / GRU: ``rnn_units``, or the NCP's neurons for lstm-19, gru-19."""
    if c.core in ("lstm", "gru"):
        return c.rnn_units
    return c.inter_neurons + c.command_neurons + c.motor_neurons


# ---------------------------------------------------------------------------------------------
# The policy


@dataclass
class PolicyState:
    """Closed-loop state of a policy between two ``act`` calls."""

    h: Tensor | None = None
    """(1, N) every neuron's state in state order, None before the first frame."""
    t_s: float | None = None
    """Simulation time of the previous frame, s; None before the first frame."""


class SteeringPolicy(nn.Module):
    """Conv head + recurrent core + linear readout; a ``Driver`` for the closed loop.

    Args:
        config: The policy configuration (default: cfc-ncp on the NCP conv head).
    """

    def __init__(self, config: PolicyConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or PolicyConfig()
        self.preprocess = Preprocessor(c.preprocess)
        self.head = ConvHead(c.conv)
        f = self.head.num_features
        self.wiring: NCP | None = None
        if c.core in ("cfc-ncp", "ltc-ncp", *WIRING_VARIANTS):
            self.wiring = c.wiring()
            names = list(self.wiring.neuron_names)
            groups = [self.wiring.neuron_group(i) for i in range(len(names))]
            if c.core == "ltc-ncp":
                self.core: nn.Module = LTC(f, self.wiring)
            else:
                self.core = WiredCfC(f, self.wiring, mode=c.cfc_mode)
        elif c.core == "cfc-dense":
            self.core = CfC(f, c.dense_units, mode=c.cfc_mode, backbone_layers=0)
            names = _hidden_names("h", c.dense_units)
        elif c.core in ("lstm", "lstm-19"):
            units = _rnn_units(c)
            self.core = LSTMCore(f, units, c.lstm_cell_clip)
            names = _hidden_names("h", units) + _hidden_names("c", units)
        elif c.core in ("gru", "gru-19"):
            self.core = GRUCore(f, _rnn_units(c))
            names = _hidden_names("h", _rnn_units(c))
        else:
            self.core = FeedForwardCore(f, c.cnn_hidden_units)
            names = []
        if self.wiring is None:
            groups = [HIDDEN_GROUP] * len(names)
        self.neuron_names: tuple[str, ...] = tuple(names)
        self.neuron_groups: tuple[str, ...] = tuple(groups)
        if len(names) != self.core.state_size:
            raise PolicyConfigError(
                f"{c.core}: {len(names)} neuron names for a state of {self.core.state_size}"
            )
        self.command_embedding = CommandEmbedding(f) if c.command_input == "embed" else None
        if c.command_input == "branch":  # one head per command: motor neurons or a Linear
            self.readout: nn.Module = BranchReadout(
                self.core.output_size, per_output=self.wiring is not None
            )
            return
        self.readout = nn.Linear(self.core.output_size, 1)
        if self.core.output_size == 1:  # a single motor neuron: start as the identity map
            with torch.no_grad():
                self.readout.weight.fill_(1.0)
                self.readout.bias.zero_()

    # ------------------------------------------------------------------ description
    @property
    def state_size(self) -> int:
        """Number of neurons N in the state (0 for cnn)."""
        return int(self.core.state_size)

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return next(self.readout.parameters()).device

    @property
    def command_input(self) -> str:
        """How the route command enters: ``"none"``, ``"embed"`` or ``"branch"``."""
        return self.config.command_input

    def wiring_dict(self) -> dict[str, Any] | None:
        """The built wiring as plain JSON (None for cores without a wiring)."""
        return self.wiring.to_dict() if self.wiring is not None else None

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per part: conv_head, core, readout, total.

        ``command_embedding`` is added for ``command_input="embed"``. For a wired core,
        ``core_connected`` counts only weights that are real synapses (the masked entries are
        trainable tensors but never affect anything).
        """

        def count(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters() if p.requires_grad)

        out = {
            "conv_head": count(self.head),
            "core": count(self.core),
            "readout": count(self.readout),
            "total": count(self),
        }
        if self.command_embedding is not None:
            out["command_embedding"] = count(self.command_embedding)
        if hasattr(self.core, "masked_parameter_count"):
            out["core_connected"] = int(self.core.masked_parameter_count())
        return out

    # ------------------------------------------------------------------ the two stages
    def encode(self, frames: Tensor, augment: nn.Module | None = None) -> Tensor:
        """Stage 1, camera frames -> conv features.

        Crop and resize, [training augmentation], per-image standardisation, conv head.

        Windows go through in chunks of about ``CHUNK_FRAMES`` frames: every large
        intermediate tensor then stays under glibc's 32 MB mmap threshold and is reused from
        the heap instead of being mapped and page-faulted afresh on every step (this cut the
        kernel CPU time of a training step from about 0.65 s to 0.05 s). A batch of single
        frames (one closed-loop step) goes through in one piece.

        Args:
            frames: uint8 RGB, windows (B, T, H, W, 3) or one frame per row (B, H, W, 3).
            augment: Optional training augmentation acting on (B, T, 3, h, w) in [0, 1].

        Returns:
            float (B, T, F) for windows, (B, F) for single frames.
        """
        if frames.ndim == 4:  # one step: windows of one frame, in one piece
            return self._encode_frames(frames, augment, (frames.shape[0], 1))  # (B, F)
        if frames.ndim != 5:
            raise PolicyError(f"frames must be (B, T, H, W, 3) or (B, H, W, 3), got {frames.shape}")
        per = max(1, CHUNK_FRAMES // frames.shape[1])  # windows per chunk
        chunks = []
        for i in range(0, len(frames), per):
            chunk = frames[i : i + per]  # (b, T, H, W, 3)
            x = self._encode_frames(chunk.flatten(0, 1), augment, chunk.shape[:2])
            chunks.append(x.view(*chunk.shape[:2], -1))  # (b*T, F) -> (b, T, F)
        return torch.cat(chunks)  # (B, T, F)

    def _encode_frames(
        self, frames: Tensor, augment: nn.Module | None, windows: tuple[int, int]
    ) -> Tensor:
        """:meth:`encode` of frames uint8 (b*T, H, W, 3) from ``windows`` = (b, T) -> (b*T, F)."""
        x = self.preprocess.prepare(frames)  # (b*T, 3, h, w) in [0, 1]
        if augment is not None:
            x = augment(x.view(*windows, *x.shape[1:])).flatten(0, 1)  # (b, T, 3, h, w) and back
        return self.head(self.preprocess.normalize(x))  # (b*T, F)

    def decode(
        self,
        features: Tensor,
        dt_s: Tensor,
        state: Tensor | None = None,
        command: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Stage 2, conv features -> commands and neuron states.

        [Command embedding added to the features], recurrent core (elapsed = dt_s /
        time_scale_s), readout [the commanded branch], division by ``label_scale``.

        Args:
            features: Windows (B, T, F) (the core runs over time from ``state``) or one step
                (B, F) (one ``core.step`` from ``state``).
            dt_s: Elapsed time before each frame, s: (B, T) for windows, (B,) for a step.
            state: (B, N) neuron states before the first frame, None = zeros.
            command: int64 route commands (``sim.spec.Command``) of each frame, (B, T) or (B,);
                required unless ``command_input == "none"`` (then ignored).

        Returns:
            ``(curvature, states)``: curvature in 1/m, (B, T) or (B,), and every neuron's
            state after each frame, (B, T, N) or (B, N).

        Raises:
            CommandInputError: If the policy takes commands and ``command`` is missing or
                not int64 of the features' leading shape.
        """
        command = check_commands(command, tuple(features.shape[:-1]), self.config.command_input)
        if self.command_embedding is not None:
            features = self.command_embedding(features, command)
        elapsed = dt_s.to(features) / self.config.time_scale_s  # (B, T) or (B,)
        if features.ndim == 3:
            y, states = self.core(features, elapsed, state)  # (B, T, M), (B, T, N)
        elif features.ndim == 2:
            y, states = self.core.step(features, elapsed, state)  # (B, M), (B, N)
        else:
            raise PolicyError(f"features must be (B, T, F) or (B, F), got {features.shape}")
        if isinstance(self.readout, BranchReadout):
            return self.readout(y, command) / self.config.label_scale, states
        return self.readout(y).squeeze(-1) / self.config.label_scale, states

    # ------------------------------------------------------------------ windows (training)
    def forward(
        self,
        frames: Tensor,
        dt_s: Tensor,
        state: Tensor | None = None,
        augment: nn.Module | None = None,
        command: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Runs windows of frames: :meth:`decode` of :meth:`encode`.

        Args:
            frames: uint8 (B, T, H, W, 3) RGB camera frames.
            dt_s: (B, T) elapsed time before each frame, s.
            state: (B, N) initial neuron states, None = zeros.
            augment: Optional training augmentation (see :meth:`encode`).
            command: int64 (B, T) route command of each frame; required unless
                ``command_input == "none"``.

        Returns:
            ``(curvature, states)``: curvature (B, T) in 1/m and every neuron's state
            (B, T, N).
        """
        return self.decode(self.encode(frames, augment), dt_s, state, command)

    # ------------------------------------------------------------------ closed loop
    def step_frames(
        self,
        frames: Tensor,
        dt_s: Tensor,
        h: Tensor | None = None,
        command: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One step for a batch: frames uint8 (B, H, W, 3), dt_s (B,), h (B, N), command (B,).

        Returns:
            ``(curvature (B,) in 1/m, h (B, N))``.
        """
        return self.decode(self.encode(frames), dt_s, h, command)

    def reset(self) -> PolicyState:
        """State for a new episode: zeros on the first frame."""
        return PolicyState()

    def step(self, obs: dict[str, np.ndarray], state: PolicyState) -> tuple[Tensor, PolicyState]:
        """One closed-loop step from a raw simulator observation.

        Args:
            obs: ``image`` uint8 (H, W, 3) RGB, ``t_s`` float (1,) simulation time, s, and,
                unless ``command_input == "none"``, ``command`` (``sim.spec.parse_command``).
            state: From :meth:`reset` or the previous step.

        Returns:
            ``(curvature, state)``: curvature float32 (1,) in 1/m (a tensor on the policy's
            device) and the new state.

        Raises:
            PolicyError: If the image is not uint8 HWC RGB or ``t_s`` does not increase.
            CommandInputError: If the policy takes commands and ``obs["command"]`` is missing
                or not a command.
        """
        image = np.asarray(obs["image"])
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise PolicyError(
                f"obs['image'] must be uint8 (H, W, 3), got {image.dtype} {image.shape}"
            )
        t_s = float(np.asarray(obs["t_s"]).reshape(-1)[0])
        dt_s = self.config.first_step_dt_s if state.t_s is None else t_s - state.t_s
        if not dt_s > 0:
            raise PolicyError(f"t_s must increase between steps: {state.t_s} then {t_s}")
        frames = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)[None]
        dt = torch.tensor([dt_s], dtype=torch.float32, device=self.device)
        command = None
        if self.config.command_input != "none":
            value = observed_command(obs)
            command = torch.tensor([value], dtype=torch.int64, device=self.device)
        curvature, h = self.step_frames(frames, dt, state.h, command)
        return curvature.float(), PolicyState(h=h, t_s=t_s)

    def act(self, obs: dict[str, np.ndarray], state: PolicyState) -> tuple[np.ndarray, PolicyState]:
        """The ``Driver`` protocol: returns the curvature command float32 (1,) in 1/m."""
        with torch.no_grad():
            curvature, state = self.step(obs, state)
        return curvature.cpu().numpy().astype(np.float32).reshape(1), state

    def neuron_states(self, state: PolicyState) -> np.ndarray:
        """Every neuron's state after the last step, float64 (N,) in state order."""
        if state.h is None:
            return np.zeros(self.state_size)
        return state.h.detach()[0].cpu().double().numpy()
