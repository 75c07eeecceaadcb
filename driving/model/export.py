"""ONNX export of a steering policy, and an onnxruntime driver that runs the exported graph.

The exported graph is **one closed-loop step** of :class:`~driving.model.policy.SteeringPolicy`,
camera preprocessing included, so a runtime feeds it the raw simulator frame::

    image      uint8   (B, H, W, 3)   raw RGB camera frame, H x W = the checkpoint's camera
    state      float32 (B, N)         every neuron's state in state order; zeros at an
                                      episode's first frame (N = 0 for the cnn core)
    dt_s       float32 (B,)           elapsed time since the previous frame, s
    command    int64   (B,)           the route command (``sim.spec.Command``), only for a
                                      policy with ``command_input`` embed or branch
      -> Preprocessor (crop, resize, per-image standardisation) -> conv head -> core
         (elapsed = dt_s / time_scale_s) -> readout / label_scale
    curvature  float32 (B,)           steering command: path curvature in 1/m, + = left
    state_out  float32 (B, N)         the new state, fed back as ``state`` at the next frame

``B`` is 1, or any size with ``dynamic_batch=True``. The graph is written with
``torch.onnx.export(dynamo=True, external_data=False)``: one self-contained ``.onnx`` file,
weights inside (``reference/ecosystem.md`` section 6).
The graph does not know about episodes: the caller computes ``dt_s`` as the difference of
consecutive observations' ``t_s`` and uses ``first_step_dt_s`` for an episode's first frame,
exactly as :meth:`SteeringPolicy.step` does. :class:`OnnxPolicy` does that; it reads what it
needs from the model's metadata properties (:data:`METADATA_KEYS`), not from the checkpoint
folder. The file runs in any ONNX runtime without this project (the exporter's default
opset: 20 with torch 2.14); this module itself imports torch, like the rest of ``driving``.

Every core exports (cfc-ncp and its random and full controls, cfc-dense, ltc-ncp, lstm, gru
and their 19-unit versions, cnn); the tests check a 100-step
closed loop of the graph against the torch policy for each.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from driving.data.atomic import atomic_path
from driving.model.checkpoint import checkpoint_camera, load_policy, resolve_checkpoint
from driving.model.command import NUM_COMMANDS, CommandInputError, command_array, observed_command
from driving.model.policy import PolicyConfig, PolicyError, SteeringPolicy
from liquid_drive.errors import LiquidDriveError
from sim.spec import CameraSpec

logger = logging.getLogger(__name__)

FORMAT_NAME = "liquid-drive-onnx-step"
"""Value of the ``format`` metadata property of an exported policy."""
FORMAT_VERSION = 1
"""Version of the graph's inputs, outputs and metadata described in the module docstring."""
INPUT_NAMES = ("image", "state", "dt_s")
COMMAND_INPUT_NAME = "command"
"""The extra input of a command-aware policy's graph (after :data:`INPUT_NAMES`)."""
OUTPUT_NAMES = ("curvature", "state_out")
METADATA_KEYS = (
    "format",
    "format_version",
    "batch_size",
    "core",
    "state_size",
    "image_height_px",
    "image_width_px",
    "time_scale_s",
    "first_step_dt_s",
    "neuron_names",
    "neuron_groups",
    "policy_config",
    "source",
)
"""Metadata properties written into every exported model (all strings; lists and the policy
config as JSON). Exports since route commands also write ``command_input`` (absent: none)."""

FP32_TOLERANCE = 1e-5
"""Default check tolerance of a float32 export, 1/m (float rounding only)."""
INT8_TOLERANCE = 2e-3
"""Default check tolerance of an int8 export, 1/m (a few % of a typical bend's curvature)."""

_INSTALL_HINT = 'ONNX export needs onnx, onnxscript and onnxruntime: pip install -e ".[export]"'


class ExportError(LiquidDriveError, RuntimeError):
    """An export that failed or does not reproduce the torch policy (names the file)."""


class ExportConfigError(LiquidDriveError, ValueError):
    """An export setting out of range (the message shows the bad value)."""


class OnnxModelError(LiquidDriveError, ValueError):
    """An ``.onnx`` file that is not an exported liquid-drive policy (names the file)."""


@dataclass(frozen=True)
class ExportConfig:
    """``tools/export.py``: export a checkpoint to a single-step ONNX graph."""

    checkpoint: Path
    """Checkpoint folder (or a training run folder: its ``best/`` is used)."""
    out: Path = Path("policy.onnx")
    """Where to write the ``.onnx`` file (one file, weights inside)."""
    check_steps: int = 20
    """After exporting, drive this many closed-loop steps on random frames with onnxruntime
    and with torch and compare (0 = no check)."""
    dynamic_batch: bool = False
    """Export for any batch size (default: batch 1, what a closed-loop driver uses)."""
    precision: Literal["fp32", "int8"] = "fp32"
    """fp32: the policy as trained; int8: the conv head's convolutions quantised to int8
    (``driving/model/quantize.py``, calibrated on training-town frames; the core stays fp32)."""
    calibration_frames: int = 256
    """Simulator frames that calibrate the int8 activation ranges (precision int8)."""
    tolerance: float | None = None
    """Largest curvature difference (1/m) the check accepts, else the export is an error;
    None = 1e-5 for fp32 and 2e-3 for int8."""

    def __post_init__(self) -> None:
        if self.check_steps < 0:
            raise ExportConfigError(f"check_steps must be >= 0, got {self.check_steps}")
        if self.tolerance is not None and not (np.isfinite(self.tolerance) and self.tolerance > 0):
            raise ExportConfigError(f"tolerance must be a positive number, got {self.tolerance}")
        if self.calibration_frames < 1:
            raise ExportConfigError(
                f"calibration_frames must be >= 1, got {self.calibration_frames}"
            )
        if self.out.suffix != ".onnx":
            raise ExportConfigError(f"out must end in .onnx, got {self.out}")

    @property
    def check_tolerance(self) -> float:
        """The tolerance the check applies, 1/m."""
        if self.tolerance is not None:
            return self.tolerance
        return INT8_TOLERANCE if self.precision == "int8" else FP32_TOLERANCE


# ---------------------------------------------------------------------------------------------
# Export


class _StepGraph(nn.Module):
    """The exported function: (image, state, dt_s) -> (curvature, state_out)."""

    def __init__(self, policy: SteeringPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, image: Tensor, state: Tensor, dt_s: Tensor) -> tuple[Tensor, Tensor]:
        """Image uint8 (B, H, W, 3), state (B, N), dt_s (B,) -> (curvature (B,), state (B, N))."""
        return self.policy.step_frames(image, dt_s, state)


class _CommandStepGraph(_StepGraph):
    """A command-aware policy's step: (image, state, dt_s, command) -> (curvature, state_out)."""

    def forward(  # type: ignore[override]
        self, image: Tensor, state: Tensor, dt_s: Tensor, command: Tensor
    ) -> tuple[Tensor, Tensor]:
        """As :class:`_StepGraph`, with command int64 (B,) the route command of each frame."""
        return self.policy.step_frames(image, dt_s, state, command)


def input_names(command_input: str) -> tuple[str, ...]:
    """The graph's inputs for a policy's ``command_input``."""
    return INPUT_NAMES if command_input == "none" else (*INPUT_NAMES, COMMAND_INPUT_NAME)


@contextlib.contextmanager
def _quiet_exporter_logs() -> Iterator[None]:
    """Silences the exporter's per-pass INFO records (onnxscript, onnx_ir) while it runs."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise ExportError(f"{_INSTALL_HINT} ({e})") from e


def export_policy(
    policy: SteeringPolicy, out: Path | str, *, dynamic_batch: bool = False, source: str = ""
) -> Path:
    """Writes a policy's single-step graph (module docstring) to one ``.onnx`` file.

    Args:
        policy: The policy to export (not modified: a CPU float32 copy is traced).
        out: The ``.onnx`` file to write (replaced atomically if it exists).
        dynamic_batch: A graph for any batch size B (exporting takes about twice as long);
            False: B = 1, what a closed-loop driver uses.
        source: Where the policy came from (e.g. the checkpoint folder), kept in the metadata.

    Returns:
        The written file.

    Raises:
        ExportError: If onnx/onnxscript/onnxruntime are missing or the export fails.
    """
    _require_onnx()
    import onnx

    out = Path(out)
    c = policy.config
    # Traced with autograd on: the cores keep effective weights in an inference-only cache
    # (``driving.model.cores.WeightCache``) when autograd is off, which must not capture traced
    # tensors; a deep copy keeps the caller's policy and its caches untouched.
    graph = _StepGraph if c.command_input == "none" else _CommandStepGraph
    module = graph(copy.deepcopy(policy).cpu().float()).eval()
    n, h, w = policy.state_size, c.preprocess.input_height_px, c.preprocess.input_width_px
    b = 2 if dynamic_batch else 1  # an example batch of 1 would be specialised to 1
    example = (
        torch.zeros(b, h, w, 3, dtype=torch.uint8),
        torch.zeros(b, n),
        torch.full((b,), c.first_step_dt_s),
    )
    if c.command_input != "none":
        example = (*example, torch.zeros(b, dtype=torch.int64))
    names = input_names(c.command_input)
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("batch", min=1)
        dynamic_shapes = {name: {0: batch} for name in names}
    t0 = time.perf_counter()
    try:
        with torch.enable_grad(), warnings.catch_warnings(), _quiet_exporter_logs():
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
            program = torch.onnx.export(
                module,
                example,
                dynamo=True,
                input_names=list(names),
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes=dynamic_shapes,
                external_data=False,
                verbose=False,
            )
    except Exception as e:  # the exporter raises many types; name the policy and the file
        raise ExportError(f"{out}: exporting the {c.core} policy failed: {e}") from e
    proto = program.model_proto
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "batch_size": "dynamic" if dynamic_batch else "1",
        "core": c.core,
        "state_size": str(n),
        "image_height_px": str(h),
        "image_width_px": str(w),
        "time_scale_s": repr(c.time_scale_s),
        "first_step_dt_s": repr(c.first_step_dt_s),
        "neuron_names": json.dumps(list(policy.neuron_names)),
        "neuron_groups": json.dumps(list(policy.neuron_groups)),
        "policy_config": json.dumps(c.to_dict()),
        "command_input": c.command_input,
        "source": source,
    }
    onnx.helper.set_model_props(proto, metadata)
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))
    logger.info(
        "exported %s policy to %s (%.0f kB) in %.1f s",
        c.core,
        out,
        out.stat().st_size / 1e3,
        time.perf_counter() - t0,
    )
    return out


# ---------------------------------------------------------------------------------------------
# The onnxruntime driver


@dataclass
class OnnxPolicyState:
    """Closed-loop state of an :class:`OnnxPolicy` between two ``act`` calls."""

    h: np.ndarray | None = None
    """float32 (1, N): every neuron's state in state order; None before the first frame."""
    t_s: float | None = None
    """Simulation time of the previous frame, s; None before the first frame."""


class OnnxPolicy:
    """An exported policy run by onnxruntime; a ``Driver`` (``driving/rollout/episode.py``).

    ``act`` does what :meth:`SteeringPolicy.act` does, with the same checks and the same
    elapsed time (the difference of ``t_s``, rounded to float32; ``first_step_dt_s`` on an
    episode's first frame), so both give the same commands and states up to float rounding.

    Args:
        path: An ``.onnx`` file written by :func:`export_policy`.
        threads: onnxruntime intra-op threads (1: best for batch 1 and for process pools;
            None: onnxruntime's default, one per core).

    Raises:
        OnnxModelError: If the file is missing, unreadable or not an exported policy.
    """

    def __init__(self, path: Path | str, threads: int | None = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise OnnxModelError(f"{_INSTALL_HINT} ({e})") from e
        self.path = Path(path)
        if not self.path.is_file():
            raise OnnxModelError(f"{self.path}: not found")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads is not None:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise OnnxModelError(f"{self.path}: onnxruntime cannot load it: {e}") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != FORMAT_NAME:
            raise OnnxModelError(f"{self.path}: not a {FORMAT_NAME} model (no 'format' metadata)")
        if meta.get("format_version") != str(FORMAT_VERSION):
            raise OnnxModelError(
                f"{self.path}: format_version {meta.get('format_version')!r}, this code reads "
                f"{FORMAT_VERSION}"
            )
        missing = [k for k in METADATA_KEYS if k not in meta]
        if missing:
            raise OnnxModelError(f"{self.path}: metadata lacks {missing}")
        names = (
            [i.name for i in self.session.get_inputs()],
            [o.name for o in self.session.get_outputs()],
        )
        self.command_input: str = meta.get("command_input", "none")
        expected = input_names(self.command_input)
        if names != (list(expected), list(OUTPUT_NAMES)):
            raise OnnxModelError(
                f"{self.path}: inputs/outputs {names}, expected {expected} -> {OUTPUT_NAMES}"
            )
        self.metadata: dict[str, str] = dict(meta)
        self.core: str = meta["core"]
        self.state_size: int = int(meta["state_size"])
        self.image_shape: tuple[int, int, int] = (
            int(meta["image_height_px"]),
            int(meta["image_width_px"]),
            3,
        )
        self.first_step_dt_s: float = float(meta["first_step_dt_s"])
        self.time_scale_s: float = float(meta["time_scale_s"])
        self.neuron_names: tuple[str, ...] = tuple(json.loads(meta["neuron_names"]))
        self.neuron_groups: tuple[str, ...] = tuple(json.loads(meta["neuron_groups"]))

    def policy_config(self) -> PolicyConfig:
        """The configuration of the exported policy (from the metadata)."""
        return PolicyConfig.from_dict(json.loads(self.metadata["policy_config"]))

    def step_frames(
        self,
        frames: np.ndarray,
        dt_s: np.ndarray,
        h: np.ndarray | None = None,
        command: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One step for a batch: frames uint8 (B, H, W, 3), dt_s (B,) s, h (B, N) | None.

        ``command`` int64 (B,) is required unless ``command_input`` is none (then ignored).

        Returns:
            ``(curvature float32 (B,) in 1/m, h float32 (B, N))``.
        """
        b = frames.shape[0]
        if b != 1 and self.metadata["batch_size"] != "dynamic":
            raise PolicyError(
                f"{self.path.name} was exported for batch 1 (export with dynamic_batch=True "
                f"for batches), got a batch of {b}"
            )
        if h is None:
            h = np.zeros((b, self.state_size), np.float32)
        inputs = {
            "image": frames,
            "state": np.asarray(h, dtype=np.float32),
            "dt_s": np.asarray(dt_s, dtype=np.float32).reshape(b),
        }
        if self.command_input != "none":
            if command is None:
                raise CommandInputError(
                    f"{self.path.name} takes the route command (command_input="
                    f"{self.command_input}); pass command int64 ({b},)"
                )
            inputs[COMMAND_INPUT_NAME] = np.asarray(command, dtype=np.int64).reshape(b)
        curvature, h = self.session.run(None, inputs)
        return curvature, h

    def reset(self) -> OnnxPolicyState:
        """State for a new episode: zeros on the first frame."""
        return OnnxPolicyState()

    def act(
        self, obs: dict[str, np.ndarray], state: OnnxPolicyState
    ) -> tuple[np.ndarray, OnnxPolicyState]:
        """The ``Driver`` protocol: one closed-loop step from a raw simulator observation.

        Args:
            obs: ``image`` uint8 (H, W, 3) RGB, ``t_s`` float (1,) simulation time, s, and
                ``command`` unless the graph's ``command_input`` is none.
            state: From :meth:`reset` or the previous ``act``.

        Returns:
            ``(curvature float32 (1,) in 1/m, state)``.

        Raises:
            PolicyError: If the image is not uint8 (H, W, 3) of the exported camera size or
                ``t_s`` does not increase.
            CommandInputError: If the graph takes commands and ``obs["command"]`` is missing
                or not a command.
        """
        image = np.asarray(obs["image"])
        if image.dtype != np.uint8 or image.shape != self.image_shape:
            raise PolicyError(
                f"obs['image'] must be uint8 {self.image_shape} for {self.path.name}, got "
                f"{image.dtype} {image.shape}"
            )
        t_s = float(np.asarray(obs["t_s"]).reshape(-1)[0])
        dt_s = self.first_step_dt_s if state.t_s is None else t_s - state.t_s
        if not dt_s > 0:
            raise PolicyError(f"t_s must increase between steps: {state.t_s} then {t_s}")
        command = None
        if self.command_input != "none":
            command = command_array(observed_command(obs))
        curvature, h = self.step_frames(
            np.ascontiguousarray(image)[None], np.array([dt_s], dtype=np.float32), state.h, command
        )
        return curvature.astype(np.float32).reshape(1), OnnxPolicyState(h=h, t_s=t_s)

    def neuron_states(self, state: OnnxPolicyState) -> np.ndarray:
        """Every neuron's state after the last step, float64 (N,) in state order."""
        if state.h is None:
            return np.zeros(self.state_size)
        return state.h[0].astype(np.float64)


# ---------------------------------------------------------------------------------------------
# Checking an export against torch, and the tool's entry point


def _worst(current: float, gap: np.ndarray) -> float:
    """The larger of ``current`` and ``max |gap|``; NaN as soon as either is NaN."""
    if gap.size == 0:
        return current
    new = float(np.abs(gap).max())  # NaN if any element is NaN
    return math.nan if math.isnan(current) or math.isnan(new) else max(current, new)


def closed_loop_difference(
    policy: SteeringPolicy,
    driver: OnnxPolicy,
    steps: int,
    seed: int = 0,
    frames: np.ndarray | None = None,
) -> dict[str, float]:
    """Drives both on the same frames, times and commands, each on its own state.

    Times are jittered 20 Hz steps; the route command cycles through every command, 5 steps
    each (a policy with ``command_input`` none ignores it).

    ``frames`` (uint8 (N, H, W, 3), cycled) default to random images; an int8 graph is
    checked on simulator frames, the inputs its activation ranges were calibrated for.

    Returns:
        ``{"max_abs_curvature_diff": 1/m, "max_abs_state_diff": ...}`` over all steps; NaN
        when either side produced a NaN (a difference of NaN is never within a tolerance).
    """
    rng = np.random.default_rng(seed)
    h, w, _ = driver.image_shape
    s_torch, s_onnx = policy.reset(), driver.reset()
    t_s, d_cmd, d_state = 0.0, 0.0, 0.0
    for step in range(steps):
        image = (
            rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            if frames is None
            else frames[step % len(frames)]
        )
        obs = {
            "image": image,
            "speed_mps": np.array([10.0], np.float32),
            "t_s": np.array([t_s]),
            "command": command_array(step // 5 % NUM_COMMANDS),  # every command, in turn
        }
        a_torch, s_torch = policy.act(obs, s_torch)
        a_onnx, s_onnx = driver.act(obs, s_onnx)
        d_cmd = _worst(d_cmd, np.asarray(a_torch - a_onnx))
        gap = policy.neuron_states(s_torch) - driver.neuron_states(s_onnx)  # (N,)
        d_state = _worst(d_state, gap)
        t_s += 0.05 * (1.0 + 0.2 * (rng.random() - 0.5))
    return {"max_abs_curvature_diff": d_cmd, "max_abs_state_diff": d_state}


def export(cfg: ExportConfig) -> dict[str, Any]:
    """Loads a checkpoint, exports it and (``check_steps`` > 0) checks it against torch.

    Returns:
        Plain JSON: the file, its size, the core, the export time and the check's differences.

    Raises:
        ExportError: If the export fails or the check differs by more than ``tolerance``.
    """
    folder = resolve_checkpoint(cfg.checkpoint)
    policy = load_policy(folder)
    t0 = time.perf_counter()
    frames = None
    if cfg.precision == "fp32":
        out = export_policy(policy, cfg.out, dynamic_batch=cfg.dynamic_batch, source=str(folder))
    else:
        from driving.model.quantize import calibration_frames, quantize_int8

        frames = calibration_frames(_camera(folder, policy), cfg.calibration_frames)
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = export_policy(
                policy, Path(tmp) / "fp32.onnx", dynamic_batch=cfg.dynamic_batch, source=str(folder)
            )
            out = quantize_int8(fp32, cfg.out, frames)
    result: dict[str, Any] = {
        "out": str(out),
        "bytes": out.stat().st_size,
        "core": policy.config.core,
        "precision": cfg.precision,
        "state_size": policy.state_size,
        "export_s": round(time.perf_counter() - t0, 2),
    }
    if cfg.check_steps > 0:
        diff = closed_loop_difference(policy, OnnxPolicy(out), cfg.check_steps, frames=frames)
        result |= {"check_steps": cfg.check_steps, **diff}
        if any(math.isnan(v) for v in diff.values()):
            raise ExportError(
                f"{out}: the ONNX graph or the torch policy produced NaN commands or states "
                f"over {cfg.check_steps} steps"
            )
        if not diff["max_abs_curvature_diff"] <= cfg.check_tolerance:
            raise ExportError(
                f"{out}: the ONNX graph's curvature differs from the torch policy's by "
                f"{diff['max_abs_curvature_diff']:.3g} 1/m over {cfg.check_steps} steps "
                f"(tolerance {cfg.check_tolerance:g})"
            )
    return result


def _camera(folder: Path, policy: SteeringPolicy) -> CameraSpec:
    """The checkpoint's camera; for an older checkpoint, the default one at the policy's size."""
    camera = checkpoint_camera(folder)
    if camera is not None:
        return camera
    p = policy.config.preprocess
    return CameraSpec(width_px=p.input_width_px, height_px=p.input_height_px)
