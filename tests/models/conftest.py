"""Training data for the model tests: in-memory sessions with oracle labels (the truth plus
noise, the true cameras) for the tests of the datasets, losses and the loop, and stores written
by the pipeline itself (in this process, no Ray) for the tests that read a store."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from epiflow.datasets.synthetic import cmu_capture, skeleton_crops
from epiflow.models.data import SessionArrays
from epiflow.pipeline.config import (CalibrateConfig, RunConfig, SessionConfig, StoreConfig,
                                     SyntheticConfig)
from epiflow.pipeline.orchestrate import run_pipeline
from epiflow.store import PoseStore


def oracle_session(clip: str = "02_01", seed: int = 0, label_noise_m: float = 0.0,
                   n_cameras: int = 4, crop_size: int = 0) -> SessionArrays:
    """A synthetic session of a packaged clip whose labels are the truth plus Gaussian noise of
    ``label_noise_m`` metres, weight 1, with the true cameras (and skeleton crops)."""
    base = SessionArrays.from_capture(cmu_capture(clip, n_cameras, seed=seed))
    noise = np.random.default_rng(seed).normal(0, label_noise_m, base.gt3d.shape)
    crops = skeleton_crops(base.keypoints2d, base.joint_set, crop_size)[0] if crop_size else None
    return SessionArrays(base.name, base.keypoints2d, base.rig, base.joint_set,
                         (base.gt3d + noise).astype(np.float32),
                         np.ones(base.gt3d.shape[:2], np.float32), base.gt3d, base.gt_rig,
                         crops, fps=base.fps)


def pipeline_store(path, clips: dict[str, int], frames: int = 0, crop_size: int = 0,
                   calibrate: str = "given") -> PoseStore:
    """A store written by the pipeline (in this process): one synthetic session per
    ``{clip: seed}``, named after the clip; the true cameras by default."""
    sessions = tuple(SessionConfig(name=clip, synthetic=SyntheticConfig(clip=clip, seed=seed,
                                                                        frames=frames))
                     for clip, seed in clips.items())
    report = run_pipeline(RunConfig(out=str(path), sessions=sessions,
                                    calibrate=CalibrateConfig(method=calibrate),
                                    store=StoreConfig(crop_size=crop_size)),
                          progress=False, in_process=True)
    assert not report.failures, report.failures
    return PoseStore.open(path)


@pytest.fixture(scope="session")
def oracle():
    """:func:`oracle_session`."""
    return oracle_session


@pytest.fixture(scope="session")
def make_store():
    """:func:`pipeline_store`."""
    return pipeline_store


@pytest.fixture
def one_thread():
    """torch on one thread for a test's training loop (faster on a busy machine), restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
