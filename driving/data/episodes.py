"""The episode dataset: one folder per episode, written step by step, crash-safe.

This module is the public face of the format; the work is split by job:

* :mod:`driving.data.format`: names, the column table with units, the errors,
  ``meta/info.json`` (:class:`DatasetInfo`, :func:`read_info`, :func:`create_or_open_dataset`)
  and listing;
* :mod:`driving.data.frames`: JPEG frames (encoding with a checksum, decoding, checks);
* :mod:`driving.data.writer`: :class:`EpisodeWriter`;
* :mod:`driving.data.lock`: the lock that marks a ``.partial`` episode as being written;
* :mod:`driving.data.reader`: :class:`Episode`, :func:`read_episode`, :func:`load_episodes`;
* :mod:`driving.data.salvage`: finishing interrupted episodes;
* :mod:`driving.data.validate`: the up-front validation used by inspection and training.

Layout::

    <dataset>/meta/info.json                 format name + version, sim, camera, control rate,
                                             the columns with units and dtypes
    <dataset>/episodes/episode_000042/
        frames/000000.jpg ...                RGB frames (JPEG; decode with :meth:`Episode.frame`)
        steps.csv                            one row per step, the header names the columns
        episode.json                         town, weather, seed, target speed, noise settings,
                                             outcome, number of steps, extra columns with units
    <dataset>/episodes/episode_000043.partial/   being written or interrupted: never read

Every bad input is an :class:`EpisodeFormatError` (a ``ValueError``) naming the file.
"""

from driving.data.errors import (
    DatasetMismatchError,
    EpisodeFormatError,
    InvalidDataError,
    LiveEpisodeError,
    NotADatasetError,
    PartialEpisodeError,
)
from driving.data.format import (
    BASE_COLUMN_NAMES,
    COLLISION,
    COLUMNS,
    COMMAND,
    COMMAND_VALUES,
    CURVATURE_APPLIED,
    CURVATURE_EXPERT,
    CURVATURE_PRED,
    DTYPES,
    EPISODE_FILE,
    EPISODE_NAME_RE,
    EPISODES_DIR,
    FORMAT_NAME,
    FORMAT_VERSION,
    FRAME_INDEX,
    FRAMES_DIR,
    HEADING_ERROR_RAD,
    INFO_PATH,
    INTERVENTION,
    JUNCTION,
    LANE_HALF_WIDTH_M,
    LATERAL_OFFSET_M,
    NEURON_PREFIX,
    NOISE_ACTIVE,
    PARTIAL_NAME_RE,
    PARTIAL_SUFFIX,
    PROGRESS_M,
    ROAD_CURVATURE,
    SPEED_MPS,
    STEPS_FILE,
    T_S,
    V1_DEFAULTS,
    X_M,
    Y_M,
    YAW_RAD,
    Column,
    DatasetInfo,
    create_or_open_dataset,
    episode_dir,
    episode_index,
    frame_name,
    list_episodes,
    list_partial_episodes,
    neuron_column,
    next_episode_index,
    read_info,
)
from driving.data.frames import check_jpeg, decode_frame, encode_frame
from driving.data.reader import Episode, iter_episodes, load_episodes, read_episode
from driving.data.salvage import SalvageReport, salvage_dataset, salvage_episode
from driving.data.writer import EpisodeWriter

__all__ = [
    "BASE_COLUMN_NAMES",
    "COLLISION",
    "COLUMNS",
    "COMMAND",
    "COMMAND_VALUES",
    "CURVATURE_APPLIED",
    "CURVATURE_EXPERT",
    "CURVATURE_PRED",
    "DTYPES",
    "EPISODES_DIR",
    "EPISODE_FILE",
    "EPISODE_NAME_RE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "FRAMES_DIR",
    "FRAME_INDEX",
    "HEADING_ERROR_RAD",
    "INFO_PATH",
    "INTERVENTION",
    "JUNCTION",
    "LANE_HALF_WIDTH_M",
    "LATERAL_OFFSET_M",
    "NEURON_PREFIX",
    "NOISE_ACTIVE",
    "PARTIAL_NAME_RE",
    "PARTIAL_SUFFIX",
    "PROGRESS_M",
    "ROAD_CURVATURE",
    "SPEED_MPS",
    "STEPS_FILE",
    "T_S",
    "V1_DEFAULTS",
    "X_M",
    "YAW_RAD",
    "Y_M",
    "Column",
    "DatasetInfo",
    "DatasetMismatchError",
    "Episode",
    "EpisodeFormatError",
    "EpisodeWriter",
    "InvalidDataError",
    "LiveEpisodeError",
    "NotADatasetError",
    "PartialEpisodeError",
    "SalvageReport",
    "check_jpeg",
    "create_or_open_dataset",
    "decode_frame",
    "encode_frame",
    "episode_dir",
    "episode_index",
    "frame_name",
    "iter_episodes",
    "list_episodes",
    "list_partial_episodes",
    "load_episodes",
    "neuron_column",
    "next_episode_index",
    "read_episode",
    "read_info",
    "salvage_dataset",
    "salvage_episode",
]
