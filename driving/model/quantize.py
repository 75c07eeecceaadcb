"""int8 quantisation of an exported policy's conv head, calibrated on simulator frames.

The conv head is about 80 % of a closed-loop step's time. onnxruntime's static quantisation
(QDQ format) turns its five convolutions into int8 convolutions with per-channel weight
scales and uint8 activations whose ranges come from calibration frames; everything after the
conv head (the per-map linear layers, the recurrent core, the readout) stays float32, so the
liquid core's dynamics are untouched. The calibration frames are what the policy sees when
it drives: the privileged expert drives the simulator's *training* towns and weathers (never
a held-out one) with the checkpoint's own camera, and every few steps a frame is kept.

The quantised graph has the same inputs, outputs and metadata as the float32 one (plus
``precision = "int8"``), so :class:`~driving.model.export.OnnxPolicy` runs either.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import sim
from driving.data.atomic import atomic_path
from liquid_drive.errors import LiquidDriveError
from sim.spec import CameraSpec

logger = logging.getLogger(__name__)

CALIBRATION_ROAD_SEED = 424_242
"""Road seeds of the calibration drives start here (far from the suites' 7001-7003)."""


class QuantizeError(LiquidDriveError, RuntimeError):
    """Quantisation that failed (names the file)."""


def calibration_frames(
    camera: CameraSpec, frames: int = 256, every: int = 5, sim_name: str = "builtin"
) -> np.ndarray:
    """Frames the expert sees driving the training towns and weathers, uint8 (N, H, W, 3).

    Args:
        camera: The camera of the policy (its checkpoint's).
        frames: How many frames to keep.
        every: Keep one frame every this many control steps.
        sim_name: The simulator to drive (only its training split is used).
    """
    split = sim.split(sim_name)
    combos = [(t, w) for t in split.train_towns for w in split.train_weathers]
    out: list[np.ndarray] = []
    episode = 0
    while len(out) < frames:
        town, weather = combos[episode % len(combos)]
        env = sim.make_env(sim_name, town=town, weather=weather, camera=camera)
        try:
            obs, _ = env.reset(seed=CALIBRATION_ROAD_SEED + episode)
            expert = sim.make_expert(env)
            state = expert.reset()
            for step in range(every * max(1, frames // len(combos) + 1)):
                if step % every == 0:
                    out.append(obs["image"].copy())
                action, state = expert.act(obs, state)
                obs, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated or len(out) >= frames:
                    break
        finally:
            env.close()
        episode += 1
    return np.stack(out[:frames])


def quantize_int8(source: Path | str, out: Path | str, frames: np.ndarray) -> Path:
    """Writes an int8 (QDQ) copy of an exported float32 policy graph.

    Args:
        source: An ``.onnx`` file written by :func:`driving.model.export.export_policy`.
        out: The quantised ``.onnx`` file (replaced atomically).
        frames: Calibration frames, uint8 (N, H, W, 3) of the graph's camera size.

    Returns:
        ``out``.

    Raises:
        QuantizeError: If onnxruntime's quantisation tools fail.
    """
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, out = Path(source), Path(out)
    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    state_size = int(props["state_size"])
    first_dt = float(props["first_step_dt_s"])
    takes_command = props.get("command_input", "none") != "none"

    class _Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.items: Iterator[np.ndarray] = iter(frames)

        def get_next(self) -> dict[str, np.ndarray] | None:
            frame = next(self.items, None)
            if frame is None:
                return None
            inputs = {
                "image": frame[None],
                "state": np.zeros((1, state_size), np.float32),
                "dt_s": np.array([first_dt], np.float32),
            }
            if takes_command:  # the conv head's ranges do not depend on the command
                inputs["command"] = np.zeros(1, np.int64)
            return inputs

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quantized = Path(tmp) / "int8.onnx"
        try:
            quant_pre_process(str(source), str(pre))
            quantize_static(
                str(pre),
                str(quantized),
                _Frames(),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=["Conv"],  # the conv head only; the core stays float32
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )
        except Exception as e:  # onnxruntime's tools raise many types
            raise QuantizeError(f"{source}: int8 quantisation failed: {e}") from e
        result = onnx.load(str(quantized))
    onnx.helper.set_model_props(result, {**props, "precision": "int8"})
    with atomic_path(out) as tmp_out:
        onnx.save_model(result, str(tmp_out))
    logger.info("quantised %s -> %s (%d calibration frames)", source, out, len(frames))
    return out
