"""DAgger rounds: record on-policy (the expert labels), append to the dataset, retrain.

Round ``i`` (1, 2, ...) lets the previous round's policy drive (round 1: ``start``), mixed with
the expert by ``beta_i = beta0 * beta_decay ** (i - 1)``, records ``minutes`` of it into
``data`` (appended: :func:`driving.rollout.record.record` with ``driver``), then trains a fresh
policy on the whole aggregate dataset into ``out/round_NN/``. Fresh training, not
fine-tuning, as in DAgger itself (Ross et al. 2011: the next policy is trained on the
aggregate): every round runs the same recipe as the start policy on more data, so a round's
result depends on its data only, not on an optimizer's history, and rounds compare fairly
with the start policy. It costs a full training per round.

``out/dagger.json`` (written atomically) records the settings and, per round, its beta, its
driver, the first episode id it recorded and the checkpoint its training produced. A rerun of
the same command resumes: a finished round is skipped, a round killed while recording records
only the minutes still missing (its finished episodes are kept), and one killed while training
resumes the training (``--resume`` of the trainer). A rerun with more ``rounds`` goes on; one
with other settings is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from driving.data.atomic import write_json_atomic
from driving.data.format import EPISODE_FILE, list_episodes, next_episode_index, read_json
from driving.model.checkpoint import LAST_DIR, TRAIN_STATE_FILE, resolve_checkpoint
from driving.rollout.dagger import check_driver
from driving.rollout.record import RecordConfig, dataset_info, record
from driving.train.config import TrainConfig
from driving.train.trainer import train
from liquid_drive.errors import LiquidDriveError
from sim.spec import CameraSpec

logger = logging.getLogger(__name__)

STATE_FILE = "dagger.json"
"""The loop's progress in the out folder."""
STATE_FORMAT = "liquid-drive-dagger"
STATE_VERSION = 1
FREE_FIELDS = frozenset({"rounds", "workers", "progress"})
"""Settings a rerun may change (they do not change what a round records or trains)."""
FREE_TRAIN_FIELDS = frozenset({"data", "out", "resume", "device", "threads", "tensorboard"})
"""Training settings a rerun may change, or that the loop sets per round."""


class DaggerLoopError(LiquidDriveError, ValueError):
    """A bad DAgger request or an out folder of another DAgger run."""


def _placeholder_train() -> TrainConfig:
    return TrainConfig(data=(), out=Path("-"))


@dataclass(frozen=True)
class DaggerConfig:
    """Rounds of on-policy recording with the expert's labels, each followed by retraining."""

    data: Path
    """The aggregate dataset (normally the expert data the start policy was trained on); every
    round appends its episodes to it."""
    start: Path
    """The start policy: a checkpoint folder or a training run folder (its best/)."""
    out: Path
    """Folder of the rounds' training runs (round_01/ ...) and dagger.json (rerun = resume)."""
    rounds: int = 3
    """Rounds of record -> retrain."""
    minutes: float = 10.0
    """Simulated minutes recorded per round."""
    beta0: float = 0.5
    """Round 1's probability that the expert drives instead of the policy, in [0, 1]."""
    beta_decay: float = 0.5
    """Round i uses beta0 * beta_decay ** (i - 1), in [0, 1]."""
    beta_per: Literal["episode", "step", "event"] = "episode"
    """beta draws the driver per episode, per control step or per event (see tools/record.py)."""
    beta_event_s: float = 1.0
    """beta_per event: mean length of an expert stretch, s."""
    towns: tuple[str, ...] | None = None
    """Towns to record in; None = the simulator's training towns."""
    weathers: tuple[str, ...] | None = None
    """Weathers to record in; None = the simulator's training weathers."""
    episode_s: float = 60.0
    """Simulated length of each recorded episode, s."""
    driver_noise: bool = False
    """Inject steering noise while the policy drives, too."""
    seed: int = 0
    """Seed of the recording plans (each round draws new roads: new episode ids)."""
    workers: int = 1
    """Parallel recording processes."""
    train: TrainConfig = field(default_factory=_placeholder_train)
    """Training of every round (use the start policy's settings; data and out are set per
    round: the aggregate dataset and out/round_NN)."""
    progress: bool = True
    """Show progress bars (only on a terminal)."""

    def __post_init__(self) -> None:
        for name in ("data", "start", "out"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.rounds < 1:
            raise DaggerLoopError(f"rounds must be >= 1, got {self.rounds}")
        if not (math.isfinite(self.minutes) and self.minutes > 0):
            raise DaggerLoopError(f"minutes must be positive, got {self.minutes}")
        for name in ("beta0", "beta_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise DaggerLoopError(f"{name} must be in [0, 1], got {value}")
        self.record_config(1, self.start, 0.0)  # every recording option checked now

    def beta(self, round_number: int) -> float:
        """The mixing probability of round ``round_number`` (1-based)."""
        return self.beta0 * self.beta_decay ** (round_number - 1)

    def record_config(self, round_number: int, driver: Path, minutes: float) -> RecordConfig:
        """The recording of one round (``minutes`` still to record)."""
        return RecordConfig(
            out=self.data, towns=self.towns, weathers=self.weathers, minutes=max(minutes, 1e-6),
            episode_s=self.episode_s, seed=self.seed, workers=self.workers,
            progress=self.progress, driver=driver, beta=self.beta(round_number),
            beta_per=self.beta_per, beta_event_s=self.beta_event_s,
            driver_noise=self.driver_noise,
        )  # fmt: skip

    def settings(self) -> dict[str, Any]:
        """What a rerun must keep (plain JSON), for ``dagger.json``."""
        d = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in FREE_FIELDS | {"train"}
        }
        d = json.loads(json.dumps(d, default=str))
        d["train"] = {k: v for k, v in self.train.to_dict().items() if k not in FREE_TRAIN_FIELDS}
        return d


@dataclass
class DaggerSummary:
    """What the loop did."""

    out: str
    rounds: list[dict[str, Any]] = field(default_factory=list)
    """Per round: ``round``, ``beta``, ``driver``, ``episodes``, ``checkpoint``, ``skipped``."""
    stopped: bool = False
    """A signal stopped a recording; rerun the command to go on."""

    def format(self) -> str:
        """A few lines for the terminal."""
        lines = [f"DAgger in {self.out}" + (" (stopped: rerun to go on)" if self.stopped else "")]
        for r in self.rounds:
            lines.append(
                f"  round {r['round']}: beta {r['beta']:.3f}, driver {r['driver']}, "
                f"{r['episodes']} episodes recorded -> {r['checkpoint']}"
                + (" (finished earlier)" if r.get("skipped") else "")
            )
        return "\n".join(lines)


def _read_state(cfg: DaggerConfig) -> dict[str, Any]:
    path = cfg.out / STATE_FILE
    settings = cfg.settings()
    if not path.exists():
        if cfg.out.exists() and any(cfg.out.iterdir()):
            raise DaggerLoopError(f"{cfg.out} is not empty and holds no {STATE_FILE}")
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "settings": settings,
            "rounds": [],
        }
    state = read_json(path)
    if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise DaggerLoopError(f"{path}: not a {STATE_FORMAT} v{STATE_VERSION} file")
    if state["settings"] != settings:
        old = state["settings"]
        differ = sorted(k for k in {*old, *settings} if old.get(k) != settings.get(k))
        raise DaggerLoopError(
            f"{path}: a DAgger run with other settings ({', '.join(differ)} differ); "
            "rerun it with its own settings or pass another --out"
        )
    return state


def _recorded_s(data: Path, first_episode: int) -> tuple[float, int]:
    """Simulated seconds and number of the finished episodes with id >= ``first_episode``."""
    total, count = 0.0, 0
    for path in list_episodes(data):
        meta = read_json(path / EPISODE_FILE)
        if int(meta["episode_index"]) >= first_episode:
            total += float(meta.get("duration_s", 0.0))
            count += 1
    return total, count


def _check_driver(rc: RecordConfig) -> None:
    """The round's driver suits the dataset (camera, rate), checked with a probe env."""
    info = dataset_info(rc)
    check_driver(rc.driver, CameraSpec.from_dict(info.camera), info.control_rate_hz, rc.out)


def run_dagger(cfg: DaggerConfig) -> DaggerSummary:
    """Runs (or resumes) the rounds; returns what each did.

    Raises:
        DaggerLoopError: For an out folder of another run.
        liquid_drive.errors.LiquidDriveError: From recording (a driver whose camera or control
            rate does not fit the dataset: before anything is written) or training.
    """
    resolve_checkpoint(cfg.start)  # a missing start policy: an error before anything is written
    state = _read_state(cfg)
    path = cfg.out / STATE_FILE
    summary = DaggerSummary(out=str(cfg.out))
    driver = cfg.start
    for number in range(1, cfg.rounds + 1):
        rounds = {r["round"]: r for r in state["rounds"]}
        entry = rounds.get(number)
        if entry is not None and entry.get("checkpoint"):
            summary.rounds.append({**entry, "skipped": True})
            driver = Path(entry["checkpoint"])
            continue
        if entry is None:
            _check_driver(cfg.record_config(number, driver, cfg.minutes))  # before any write
            entry = {"round": number, "beta": cfg.beta(number), "driver": str(driver)}
            entry |= {"first_episode": next_episode_index(cfg.data), "recorded": False}
            entry["checkpoint"] = None
            state["rounds"].append(entry)
            cfg.out.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, state)
        if not entry["recorded"]:
            done_s, _ = _recorded_s(cfg.data, entry["first_episode"])
            missing_min = cfg.minutes - done_s / 60.0
            if missing_min * 60.0 >= 1.0:  # less than a second missing: the round is recorded
                logger.info(
                    "round %d: recording %.2f min, beta %.3f", number, missing_min, entry["beta"]
                )
                result = record(cfg.record_config(number, Path(entry["driver"]), missing_min))
                if result.stopped:
                    summary.stopped = True
                    return summary
            entry["recorded"] = True
            write_json_atomic(path, state)
        run = cfg.out / f"round_{number:02d}"
        resume = (run / LAST_DIR / TRAIN_STATE_FILE).is_file()
        best = train(dataclasses.replace(cfg.train, data=(cfg.data,), out=run, resume=resume))
        entry["checkpoint"] = str(best)
        _, entry["episodes"] = _recorded_s(cfg.data, entry["first_episode"])
        write_json_atomic(path, state)
        summary.rounds.append(dict(entry))
        driver = best
    return summary
