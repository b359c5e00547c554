"""Training data streamed from the pose store, chunk by chunk, for stores too large for memory.

:class:`StreamingPoseDataset` plans once what to read: every session with cameras
(:func:`~epiflow.models.data.ready_sessions`), cut along T into *units* of whole store chunks
(at least :data:`UNIT_MIN_FRAMES` frames: one read per chunk and array, locally or from object
storage), and opens the sessions for reading together
(:class:`~epiflow.models.stream_reader.SessionReader`: their metadata, cameras and person ids
read once and kept for every epoch this process reads; a DataLoader worker opens its own). An
epoch (:meth:`StreamingPoseDataset.epoch`, a torch ``IterableDataset`` of whole
batches) then:

1. orders the units at random (seed and epoch; the same order in every process) and deals them
   out to the *shards*: Ray Train ranks (``torch.distributed``) times DataLoader workers, unit
   ``i`` to shard ``i mod shards``, so no two shards read the same unit;
2. reads each of its units with the same code as the in-memory path
   (:meth:`SessionArrays.people_from_store` with ``frames``, :func:`prepare_session`,
   :class:`PoseDataset`): every labelled person with its pseudo-labels and per-joint weights,
   inputs normalised alike; a temporal window reads ``window // 2`` frames beyond the unit on
   each side, so a sample's window is the one the whole session gives; with ``augment``
   (``[data.augment]``, :mod:`epiflow.models.augment`) each unit's sequences get their
   augmented copies as the in-memory path makes them, drawn per unit (seeded by the unit, so
   every epoch and process sees the same copies), except that a limb swap (``limb_swap``)
   borrows from the unit's own sequence at other moments, not from every training sequence
   (a unit never holds the others);
3. reads ``buffer_chunks`` units at a time, all at once (a thread per unit, each reading all
   its arrays' chunks together: on S3 a group costs about one round trip of its chunk GETs,
   not one per array and unit), and deals their rows out at random into batches
   (every batch full but the last of each shard: the rows one group leaves over are gathered
   into the first batch of the next), so at most ``buffer_chunks`` units are held at once.

One pass over an epoch yields every sample of the in-memory :class:`PoseDataset` exactly once
(the same ``x``, ``y``, ``w``), in another order. Differences: with several people, the true
person matched to a labelled one for evaluation (``gt``) is the nearest over the unit's frames,
not over the whole session; and under Ray Train with several ranks every rank yields the same
number of batches (:meth:`_Epoch.__len__`: DistributedDataParallel needs it), starting its units
over when it runs out (a few samples are seen twice) and stopping at that count.

Memory: ``buffer_chunks`` units of ``chunk_frames`` frames (× cameras × people) instead of every
session. ``benchmarks/loader.py`` measures the throughput (samples/s) beside the model's step.
"""
from __future__ import annotations

import math
import os
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from epiflow.models.augment import AugmentConfig, augment_session
from epiflow.models.data import (DataError, PoseDataset, SessionArrays, convert_joint_set,
                                 prepare_session, ready_sessions)
from epiflow.models.stream_reader import SessionReader
from epiflow.skeleton import get_joint_set

__all__ = ["StreamingPoseDataset", "UNIT_MIN_FRAMES", "training_mb", "use_streaming"]

#: a unit is at least this many frames (whole store chunks) by default: a unit costs a round
#: trip and a fixed preparation besides its chunks (it once also cost some 30 metadata requests,
#: 70 ms on this machine locally, that 16-frame units paid for every 50 samples; the sessions'
#: metadata is now read once, :class:`~epiflow.models.stream_reader.SessionReader`)
UNIT_MIN_FRAMES = 256
#: bytes per (frame, camera, person, joint) of the prepared training arrays: x 2, uv 2, conf 1,
#: y 3, w 1, gt 3 float32 (the in-memory path holds them twice: per session and concatenated)
_BYTES_PER_JOINT = 12 * 4 * 2


@dataclass(frozen=True)
class _Unit:
    """Frames ``start:stop`` of one session: what one shard reads at once."""

    session_id: str
    start: int
    stop: int


@dataclass(frozen=True)
class _SessionPlan:
    """What the planner learnt about a session without reading its arrays."""

    session_id: str
    n_frames: int
    n_cameras: int
    names: tuple[str, ...]        # its sequences (people), as the in-memory path names them
    has_gt: bool
    estimate: int                 # samples, an upper bound (labelled frames x cameras)


def training_mb(store, ids: Sequence[str] | None, joint_set: str) -> float:
    """The memory (MB) the in-memory path would take for the training arrays of ``ids`` (all
    sessions with cameras when None), from the sessions' shapes alone: frames × cameras ×
    people × joints × :data:`_BYTES_PER_JOINT`, plus the person crops when the store has them."""
    J = len(get_joint_set(joint_set))
    total = 0
    for s in ready_sessions(store, ids):
        T, C = s.n_frames, len(s.camera_names)
        N = max(len(s.person_ids), 1)
        total += T * C * N * J * _BYTES_PER_JOINT
        if s.crops is not None:
            total += int(np.prod(s.crops.shape))
    return total / 1e6


def use_streaming(mode: str, store, ids: Sequence[str] | None, joint_set: str,
                  above_mb: float) -> tuple[bool, str]:
    """Whether to stream (``data.streaming``: ``on``, ``off``, ``auto``: when the training
    arrays would take more than ``above_mb`` MB), and why, in words."""
    if mode in ("on", "off"):
        return mode == "on", f"data.streaming = {mode!r}"
    mb = training_mb(store, ids, joint_set)
    why = f"{mb:.0f} MB of training arrays {'>' if mb > above_mb else '<='} " \
          f"data.stream_above_mb = {above_mb:g}"
    return mb > above_mb, why


class StreamingPoseDataset:
    """The samples of :class:`~epiflow.models.data.PoseDataset` over store sessions, read unit
    by unit (module docstring). Iterate through :meth:`epoch`.

    Args:
        store: a path or URL (local folder, ``s3://...``) of the pose store.
        session_ids: the sessions to use (each must have cameras); None = every one that has.
        labels, joint_set, window, views, images: as :func:`prepare_session` and
            :class:`PoseDataset` take them.
        buffer_chunks: units held (and shuffled together) at a time.
        chunk_frames: frames per unit; 0 = each session's store chunks (``chunk_frames``),
            as many as make :data:`UNIT_MIN_FRAMES`.
        shard: (rank, world) of this process among the trainers; None = from
            ``torch.distributed`` when it is initialised (Ray Train), else (0, 1).
        augment: ``[data.augment]``: ``copies`` augmented sequences of each unit's sequences
            (:func:`~epiflow.models.augment.augment_session`, named ``<name>~aug<k>``), as
            the in-memory training set gets them; None or ``copies = 0``: none. Image models
            are not augmented (no crops of virtual cameras), as in memory.
        level: each unit's cameras turned to their level cameras (``data.level``; the vertical
            from the unit's own 3D labels), as :func:`prepare_session` does.
    """

    def __init__(self, store, session_ids: Sequence[str] | None = None, *,
                 labels: str | None = "pseudo", joint_set: str = "h36m17", window: int = 1,
                 views: bool = False, images: bool = False, buffer_chunks: int = 16,
                 chunk_frames: int = 0, shard: tuple[int, int] | None = None,
                 augment: AugmentConfig | None = None, level: bool = False):
        if buffer_chunks < 1:
            raise DataError(f"the shuffle buffer must hold at least one chunk; got {buffer_chunks}")
        if window < 1 or window % 2 == 0:
            raise DataError(f"window must be a positive odd number of frames; got {window}")
        self.url = str(getattr(store, "url", store))
        self.labels, self.joint_set, self.window = labels, joint_set, window
        self.views, self.images, self.buffer_chunks = views, images, buffer_chunks
        self.shard, self.level = shard, level
        self.augment = augment if augment is not None and augment.copies > 0 and not images \
            else None
        self._error_model = None                   # the augmentation's 2D error model, loaded once
        self._opened: _Opened | None = None   # per process (DataLoader workers open their own)
        self.plans, self.units = self._plan(store if hasattr(store, "session_ids")
                                            else self._process().store, session_ids,
                                            chunk_frames)
        self.names = [n for p in self.plans for n in p.names]
        self._name_index = {n: i for i, n in enumerate(self.names)}
        # augmented pseudo-labelled copies have no ground truth (in memory alike: then none has)
        self.has_gt = all(p.has_gt for p in self.plans) and (self.augment is None
                                                             or labels == "gt")
        if views and len({p.n_cameras for p in self.plans}) > 1:
            raise DataError("multi-view samples need every session to have the same number of "
                            f"cameras; got {[p.n_cameras for p in self.plans]}")

    def _plan(self, store, ids, chunk_frames: int) -> tuple[list[_SessionPlan], list[_Unit]]:
        """Each session's plan and units; the sessions are opened for reading together
        (:meth:`_session`) and kept for this process's epochs."""
        sessions = ready_sessions(store, ids)
        with ThreadPoolExecutor(min(len(sessions), 8), thread_name_prefix="epiflow-plan") as pool:
            plans = list(pool.map(self._plan_session, sessions))
        units = []
        for s, plan in zip(sessions, plans):
            F = chunk_frames or s.chunk_frames * -(-UNIT_MIN_FRAMES // s.chunk_frames)
            T = plan.n_frames
            units += [_Unit(s.id, a, min(a + F, T)) for a in range(0, T, F)]
        return plans, units

    def _plan_session(self, s) -> _SessionPlan:
        """What the planner learns of session ``s`` (its metadata and label weights read)."""
        own = s.group.store is self._process().store.root.store
        reader = self._session(s.id, s if own else None)
        view = reader.frames(0, 0)                      # the session's metadata, no frame
        T, C = s.n_frames, len(s.camera_names)
        if view.has_labels:
            pids = view.person_ids
            names = tuple(s.id if len(pids) == 1 else f"{s.id}:p{p}" for p in pids)
            labelled = int((reader.whole("pseudo3d_weight") > 0).any(-1).sum())
        else:
            names, labelled = (s.id,), T
        if self.labels == "gt":
            labelled = T * len(names)
        truth = view.ground_truth(slice(0, 0))
        copies = self.augment.copies if self.augment is not None else 0
        names += tuple(f"{n}~aug{k}" for n in names for k in range(copies))
        return _SessionPlan(s.id, T, C, names, truth is not None and truth.frame != "source",
                            labelled * (1 + copies) * (1 if self.views else C))

    @property
    def n_samples_bound(self) -> int:
        """An upper bound of the samples in one pass (labelled person-frames × cameras)."""
        return sum(p.estimate for p in self.plans)

    def epoch(self, batch_size: int, shuffle: bool = True, seed: int = 0, epoch: int = 0,
              num_workers: int = 0) -> "_Epoch":
        """One pass as an ``IterableDataset`` of batches (dicts as
        :meth:`PoseDataset.__getitems__` gives, ``session`` indexing :attr:`names` and
        ``frame`` counted from the session's start); give it to a DataLoader with
        ``batch_size=None``. ``shuffle`` False: units in order, read whole, no rank sharding
        (validation); DataLoader workers still share the units out."""
        return _Epoch(self, batch_size, shuffle, seed, epoch, max(num_workers, 1))

    # -- reading one unit ----------------------------------------------------------------------
    def __getstate__(self) -> dict:
        """Pickled for DataLoader workers without the open store (each process opens its own)."""
        return {**self.__dict__, "_opened": None}

    def _process(self) -> "_Opened":
        """What this process holds open for reading (:class:`_Opened`), opened on first use."""
        if self._opened is None or self._opened.pid != os.getpid():
            self._opened = _Opened(os.getpid(), _open_store(self.url))
        return self._opened

    def _session(self, session_id: str, session=None) -> SessionReader:
        """The session opened for reading units (:class:`SessionReader`: its metadata read
        once per process; from ``session`` when given, opened by this process's store),
        shared by the threads that read a group's units."""
        opened = self._process()
        with opened.lock:                  # one lock per session: sessions open concurrently
            session_lock = opened.session_locks.setdefault(session_id, threading.Lock())
        with session_lock:
            if session_id not in opened.readers:
                opened.readers[session_id] = SessionReader(
                    session or opened.store.session(session_id), self.images)
            return opened.readers[session_id]

    def read_unit(self, unit: _Unit) -> tuple[PoseDataset, np.ndarray, int] | None:
        """The unit's samples: a :class:`PoseDataset` over its frames (plus the window's
        margin), the global sequence index of each of its sequences, and its first frame; None
        when it has no sample. Its ``index`` keeps only the unit's own frames."""
        people, lo = self._unit_people(unit)
        with self._process().compute:
            if self.augment is not None:
                people = list(people) + self._augmented(people, unit)
            prepared = [prepare_session(p, self.labels, self.joint_set, self.level)
                        for p in people]
            data = PoseDataset(prepared, self.window, self.views, self.images)
        frame = data.index[:, 1] + lo
        data.index = data.index[(frame >= unit.start) & (frame < unit.stop)]
        if not len(data.index):
            return None
        return data, np.array([self._name_index[p.name] for p in prepared]), lo

    def _unit_people(self, unit: _Unit) -> tuple[list[SessionArrays], int]:
        """The unit's sequences over its frames widened by the window's margin (every array
        read at once: :meth:`SessionReader.frames`), and the first frame read."""
        reader = self._session(unit.session_id)
        half = self.window // 2
        lo, hi = max(unit.start - half, 0), min(unit.stop + half, reader.session.n_frames)
        view = reader.frames(lo, hi)
        with self._process().compute:
            return SessionArrays.people_from_store(view, self.images, slice(lo, hi)), lo

    def _augmented(self, people: list, unit: _Unit) -> list:
        """The augmented copies of a unit's sequences (:func:`augment_session`), the same for
        the same unit in every epoch and process (the generator is seeded by ``augment.seed``,
        the session and the unit's first frame)."""
        from epiflow.models.detector_error import DetectorErrorModel
        cfg = self.augment
        if cfg.detector == "learned" and self._error_model is None:
            self._error_model = DetectorErrorModel.packaged()
        rng = np.random.default_rng([cfg.seed, zlib.crc32(unit.session_id.encode()), unit.start])
        return [copy for p in people
                for copy in augment_session(convert_joint_set(p, self.joint_set), cfg,
                                            self.labels, self._error_model, rng)]


@dataclass
class _Opened:
    """What one process holds open to read units: the store (:func:`_open_store`), its
    sessions' readers (by session id) and the locks of the threads that read a group's units:
    ``lock`` guards ``session_locks`` (one per session, held while it opens), ``compute`` lets
    one thread at a time turn what it read into samples (the reads overlap; the numpy work
    gains little from threads, and ``warnings.catch_warnings`` inside it is process-wide)."""

    pid: int
    store: object
    readers: dict = field(default_factory=dict)
    session_locks: dict = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    compute: threading.Lock = field(default_factory=threading.Lock)


def _open_store(url: str):
    """The store at ``url`` opened for reading; on S3 with one request per chunk: s3fs asks
    each file's size first (a HEAD) to split files larger than its block size (50 MB) into
    concurrent ranged reads, which store chunks (kB) never are, so that is turned off."""
    from epiflow.store import PoseStore
    s3 = url.split("://")[0] in ("s3", "s3a")
    return PoseStore.open(url, "r", {"max_concurrency": 1} if s3 else None)


class _Epoch(torch.utils.data.IterableDataset):
    """One pass of a :class:`StreamingPoseDataset` (see :meth:`StreamingPoseDataset.epoch`)."""

    def __init__(self, source: StreamingPoseDataset, batch_size: int, shuffle: bool, seed: int,
                 epoch: int, num_workers: int):
        self.source, self.batch_size, self.shuffle = source, batch_size, shuffle
        self.seed, self.epoch, self.num_workers = seed, epoch, num_workers

    def _ranks(self) -> tuple[int, int]:
        if not self.shuffle:
            return 0, 1
        if self.source.shard is not None:
            return self.source.shard
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        """Batches per pass: with several ranks, exactly this many on each (the bound of the
        samples over ranks and batch size); otherwise an upper bound (every worker may end on a
        partial batch), for the learning-rate schedule and the progress bar."""
        rank, world = self._ranks()
        if world > 1:
            return max(self.source.n_samples_bound // (self.batch_size * world), 1)
        return math.ceil(self.source.n_samples_bound / self.batch_size) + self.num_workers - 1

    def _shard_units(self, rank: int, world: int, worker: int, workers: int) -> list[_Unit]:
        units = list(self.source.units)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(units))
            units = [units[i] for i in order]
        shard, shards = rank * workers + worker, world * workers
        return units[shard::shards]

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world = self._ranks()
        units = self._shard_units(rank, world, worker, workers)
        rng = np.random.default_rng([self.seed, self.epoch, rank, worker, 1])
        if world == 1:
            yield from self._batches(units, rng)
            return
        total = len(self)
        quota = total // workers + (worker < total % workers)   # this worker's batches
        sent, passes = 0, 0
        while sent < quota and units:
            for batch in self._batches(units if passes == 0 else list(rng.permutation(units)),
                                       rng):
                yield batch
                sent += 1
                if sent == quota:
                    return
            passes += 1

    def _batches(self, units: list[_Unit], rng: np.random.Generator):
        """Full batches (the last one may be partial) drawn from groups of ``buffer_chunks``
        units read together, their rows shuffled together (in order, one unit at a time,
        without shuffling); the rows a group leaves over start the next group's first batch,
        gathered already, so only one group is held at a time."""
        buffer = self.source.buffer_chunks if self.shuffle else 1
        with ThreadPoolExecutor(buffer, thread_name_prefix="epiflow-unit") as pool:
            yield from self._batches_read_by(pool, units, buffer, rng)

    def _batches_read_by(self, pool: ThreadPoolExecutor, units: list[_Unit], buffer: int,
                         rng: np.random.Generator):
        """:meth:`_batches`, each group's units read at once by the threads of ``pool``."""
        carry = None                                   # a partial batch, gathered
        for g in range(0, len(units), buffer):
            held = {k: got for k, got in enumerate(pool.map(self.source.read_unit,
                                                            units[g:g + buffer]))
                    if got is not None}
            rows = np.concatenate([np.stack([np.full(len(d.index), k), np.arange(len(d.index))],
                                            1) for k, (d, _, _) in held.items()]) \
                if held else np.zeros((0, 2), np.int64)
            if self.shuffle:
                rows = rows[rng.permutation(len(rows))]
            start = 0
            if carry is not None and len(rows):
                start = self.batch_size - len(carry["frame"])
                carry = _cat([carry, self._gather(held, rows[:start])])
                if len(carry["frame"]) == self.batch_size:
                    yield carry
                    carry = None
            for at in range(start, len(rows), self.batch_size):
                part = self._gather(held, rows[at:at + self.batch_size])
                if len(part["frame"]) < self.batch_size:
                    carry = part
                else:
                    yield part
            del held
        if carry is not None:
            yield carry

    def _gather(self, held: dict, take: np.ndarray) -> dict[str, torch.Tensor]:
        """One batch from rows ``take`` (unit id, row) of the held units, with ``session`` as
        an index of :attr:`StreamingPoseDataset.names` and ``frame`` of the session."""
        parts = []
        for k in np.unique(take[:, 0]):
            data, seq, first = held[int(k)]
            part = data.__getitems__(take[take[:, 0] == k, 1])
            part["session"] = torch.from_numpy(seq[part["session"].numpy()])
            part["frame"] = part["frame"] + first
            if not self.source.has_gt:
                part.pop("gt", None)
            parts.append(part)
        return _cat(parts)


def _cat(parts: list[dict]) -> dict[str, torch.Tensor]:
    """Batches (dicts of tensors with the same keys) joined along the batch axis."""
    return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
