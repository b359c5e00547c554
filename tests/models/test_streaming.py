"""The streaming dataset (:mod:`epiflow.models.streaming`) against the in-memory one, on a store
written by the pipeline (in this process): two one-person synthetic sessions and a two-person
crowd, chunks of 16 frames. Over an epoch it yields exactly the in-memory samples (same inputs,
labels, weights), shuffled; it reads chunk slices only and holds a bounded number; shards are
disjoint and together whole; training runs on it."""
from __future__ import annotations

import weakref
from dataclasses import replace

import numpy as np
import pytest
import torch

from epiflow.calibration.formats import save_toml
from epiflow.datasets.crowds import CrowdOptions, make_crowd
from epiflow.keypoints import Keypoints, save_npz
from epiflow.models.config import DataConfig, ExperimentConfig, TrainConfig
from epiflow.models.data import (PoseDataset, SessionArrays, load_sessions, prepare_session)
from epiflow.models.streaming import StreamingPoseDataset, use_streaming
from epiflow.models.train import build_data, fit, make_loader
from epiflow.pipeline.config import (CalibrateConfig, DetectConfig, RunConfig, SessionConfig,
                                     SyntheticConfig)
from epiflow.pipeline.orchestrate import run_pipeline

CHUNK = 16


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Sessions a (70 frames), b (44 of 50), and 'two' (two people, 40 frames), chunk 16 frames."""
    tmp = tmp_path_factory.mktemp("stream")
    crowd = make_crowd(CrowdOptions(n_people=2, n_cameras=3, n_frames=40), seed=3)
    save_npz(Keypoints(crowd.detections, crowd.joint_set, tuple(crowd.rig.names),
                       crowd.rig.sizes, crowd.fps), tmp / "kp.npz")
    save_toml(crowd.rig, tmp / "cameras.toml")
    sessions = (SessionConfig(name="a", synthetic=SyntheticConfig(clip="02_01", frames=70,
                                                                  n_cameras=3)),
                SessionConfig(name="b", synthetic=SyntheticConfig(clip="02_03", frames=50,
                                                                  n_cameras=3, seed=1)),
                SessionConfig(name="two", keypoints=str(tmp / "kp.npz"),
                              cameras=str(tmp / "cameras.toml")))
    report = run_pipeline(RunConfig(out=str(tmp / "s.zarr"), sessions=sessions,
                                    calibrate=CalibrateConfig(method="given"),
                                    detect=DetectConfig(chunk_frames=CHUNK)),
                          progress=False, in_process=True)
    assert not report.failures, report.failures
    return str(tmp / "s.zarr")


def _in_memory(store, window=1, labels="pseudo"):
    return PoseDataset([prepare_session(s, labels) for s in load_sessions(store)], window)


def _samples(batches, names):
    """{(sequence name, frame, camera): (x, y, w)} of every sample; fails on a duplicate."""
    out = {}
    for b in batches:
        for i in range(len(b["frame"])):
            key = (names[int(b["session"][i])], int(b["frame"][i]), int(b["camera"][i, 0]))
            assert key not in out, f"sample {key} yielded twice"
            out[key] = (b["x"][i].numpy(), b["y"][i].numpy(), b["w"][i].numpy())
    return out


@pytest.mark.parametrize("window", [1, 5])
def test_epoch_yields_exactly_the_in_memory_samples(store, window):
    memory = _in_memory(store, window)
    want = _samples([memory.__getitems__(np.arange(len(memory)))], memory.names)
    stream = StreamingPoseDataset(store, window=window, buffer_chunks=3,
                                  chunk_frames=CHUNK)
    assert stream.names == memory.names == ["a", "b", "two:p0", "two:p1"]
    assert [p.n_frames for p in stream.plans] == [70, 44, 40]   # b: ingest trims its end
    assert len(stream.units) == 5 + 3 + 3                       # ceil(T / 16) per session
    batches = list(stream.epoch(batch_size=37, shuffle=True, seed=0))
    got = _samples(batches, stream.names)
    assert set(got) == set(want) and len(got) > 400
    for key, (x, y, w) in want.items():     # the window at a chunk's edge reads the next chunk
        gx, gy, gw = got[key]
        assert np.array_equal(gx, x) and np.array_equal(gw, w)
        assert np.array_equal(gy, y, equal_nan=True)
    assert sum(w.sum() > 0 for _, _, w in want.values()) == len(want)   # labelled only
    assert all(len(b["frame"]) == 37 for b in batches[:-1])
    order = [(int(b["session"][i]), int(b["frame"][i])) for b in batches[:3]
             for i in range(len(b["frame"]))]
    assert order != sorted(order)                               # shuffled across chunks
    assert len({s for s, _ in order[:37]}) >= 2                 # a batch mixes sessions
    again = [(int(b["session"][0]), int(b["frame"][0]))
             for b in stream.epoch(batch_size=37, shuffle=True, seed=0, epoch=1)]
    assert again != [(int(b["session"][0]), int(b["frame"][0])) for b in batches]
    assert len(batches) <= len(stream.epoch(batch_size=37))    # the bound the schedule uses


def test_reads_chunks_only_and_holds_a_bounded_number(store, monkeypatch):
    reads, original = [], SessionArrays.people_from_store.__func__

    def spy(cls, session, need_crops=False, frames=slice(None)):
        reads.append((session.id, frames.start, frames.stop))
        return original(cls, session, need_crops, frames)
    monkeypatch.setattr(SessionArrays, "people_from_store", classmethod(spy))
    stream = StreamingPoseDataset(store, window=3, buffer_chunks=2, chunk_frames=CHUNK)
    alive, most, read_unit = set(), [0], stream.read_unit

    def counted(unit):               # the units held at once: each lives until it is used up
        got = read_unit(unit)
        if got is not None:
            alive.add(unit)
            weakref.finalize(got[0], alive.discard, unit)
            most[0] = max(most[0], len(alive))
        return got
    stream.read_unit = counted
    n = sum(len(b["frame"]) for b in stream.epoch(batch_size=20, shuffle=True))
    assert len(reads) == len(stream.units) == 11 and n > 400
    assert max(stop - start for _, start, stop in reads) <= CHUNK + 2   # chunk + window margin
    assert most[0] == 2, most                # the buffer: one group of units at a time
    assert len(_in_memory(store, 3)) == n


def test_shards_are_disjoint_and_whole(store):
    stream = StreamingPoseDataset(store, buffer_chunks=2, chunk_frames=CHUNK)
    epoch = stream.epoch(batch_size=16, shuffle=True, seed=4)
    units = [set(epoch._shard_units(r, 2, w, 3)) for r in range(2) for w in range(3)]
    assert sum(len(u) for u in units) == len(stream.units) == len(set().union(*units))
    # DataLoader workers: each reads its own units; together every sample once
    loader = torch.utils.data.DataLoader(stream.epoch(batch_size=16, seed=4, num_workers=2),
                                         batch_size=None, num_workers=2)
    got = _samples(loader, stream.names)
    assert len(got) == len(_in_memory(store))
    # Ray Train ranks: the same number of batches on each (DistributedDataParallel needs it)
    ranks = [StreamingPoseDataset(store, shard=(r, 3), chunk_frames=CHUNK) for r in range(3)]
    counts = [sum(1 for _ in r.epoch(batch_size=16)) for r in ranks]
    assert counts == [len(ranks[0].epoch(batch_size=16))] * 3 and counts[0] >= 8


def test_training_streams_when_asked_or_when_large(store, tmp_path):
    cfg = ExperimentConfig(data=DataConfig(store=store, val_sessions=("b",), streaming="on",
                                           shuffle_buffer=2),
                           train=TrainConfig(epochs=2, batch_size=64, device="cpu",
                                             progress=False, threads=1))
    data = build_data(cfg)
    assert isinstance(data.train, StreamingPoseDataset) and data.val is not None
    assert data.train.names == ["a", "two:p0", "two:p1"] and data.val.names == ["b"]
    assert len(data.train.units) == 2                           # whole sessions: <= 256 frames
    result = fit(cfg, tmp_path / "run", data)
    rows = result.history
    assert len(rows) == 2 and rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert np.isfinite(rows[-1]["val_gt_mm"]) and rows[-1]["val_gt_mm"] < 400
    mb = use_streaming("auto", store, None, "h36m17", 1e6)
    assert mb[0] is False and "MB of training arrays <=" in mb[1]
    assert use_streaming("auto", store, None, "h36m17", 0.01)[0] is True
    off = build_data(replace(cfg, data=replace(cfg.data, streaming="auto")))
    assert isinstance(off.train, PoseDataset)                  # small: read whole
    loader = make_loader(data.train, cfg, torch.device("cpu"), True)
    assert len(loader) == len(data.train.epoch(64))


def test_streamed_training_sequences_are_augmented_like_in_memory(store):
    """``[data.augment]`` reaches the streamed training set (it was silently dropped): each
    unit's sequences get ``copies`` augmented copies, as many samples as the in-memory path
    makes, their own 2D and labels (virtual cameras, perturbed bones), the same in every
    epoch; validation is not augmented, like in memory."""
    from epiflow.models.augment import AugmentConfig, augment_sessions
    aug = AugmentConfig(copies=2, detector="none", seed=5)
    plain = StreamingPoseDataset(store, ["a"], chunk_frames=CHUNK)
    stream = StreamingPoseDataset(store, ["a"], chunk_frames=CHUNK, augment=aug)
    assert stream.names == ["a", "a~aug0", "a~aug1"] and not stream.has_gt
    got = _samples(stream.epoch(batch_size=32, seed=0), stream.names)
    base = _samples(plain.epoch(batch_size=32, seed=0), plain.names)
    memory = PoseDataset([prepare_session(s) for s in augment_sessions(
        load_sessions(store, ["a"]), aug, "pseudo", "h36m17")], 1)
    copies = {k: v for k, v in got.items() if "~aug" in k[0]}
    assert {k: v for k, v in got.items() if "~aug" not in k[0]}.keys() == base.keys()
    assert len(copies) > 1.5 * len(base)                       # 2 copies, most joints in view
    assert abs(len(got) - len(memory)) < 0.1 * len(memory)     # as many as in memory
    assert len(got) <= stream.n_samples_bound                  # the schedule's bound holds
    for (name, frame, cam), (x, y, w) in list(copies.items())[:50]:
        ox, oy, _ = base[("a", frame, cam)]
        assert np.abs(x - ox).max() > 1e-3 and np.nanmax(np.abs(y - oy)) > 1e-3
        assert (w > 0).any()
    again = _samples(stream.epoch(batch_size=32, seed=1, epoch=3), stream.names)
    assert again.keys() == got.keys() and all(
        np.array_equal(again[k][0], got[k][0]) for k in copies)   # the same copies each epoch
    cfg = ExperimentConfig(data=DataConfig(store=store, val_sessions=("b",), streaming="on",
                                           augment=aug))
    data = build_data(cfg)
    assert data.train.augment == aug and data.val.augment is None
    assert "a~aug1" in data.train.names and data.val.names == ["b"]


def test_streamed_level_cameras_have_the_labels_upright(store):
    """data.level when streaming: each unit's cameras turned to their level cameras (the
    vertical from the unit's own labels), so every label's torso points up in the frame the
    model learns in, which the plain stream's labels do not all do."""
    from epiflow.models.level import IMAGE_UP

    def torso_up(level):
        stream = StreamingPoseDataset(store, buffer_chunks=3, chunk_frames=CHUNK, level=level)
        y = np.concatenate([b["y"].numpy().reshape(-1, 17, 3)
                            for b in stream.epoch(batch_size=64)])
        torso = y[:, 8] - y[:, 0]
        torso = torso[np.isfinite(torso).all(-1)]
        return (torso / np.linalg.norm(torso, axis=-1, keepdims=True)) @ IMAGE_UP
    level, plain = torso_up(True), torso_up(False)
    assert len(level) == len(plain) > 400
    assert np.median(level) > 0.99 and np.median(plain) < np.median(level) - 0.005
