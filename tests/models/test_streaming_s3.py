"""Streaming a store from S3 (:mod:`epiflow.models.streaming`) over the real S3 HTTP protocol: a
moto server started here, s3fs as the client, a store written by the pipeline locally and copied
up. The samples are the local store's; an epoch costs its chunks (one GET each, no size request
before it) plus a few metadata reads per session, not per unit; and the requests of a group of
units are in flight together, not one array after another."""
from __future__ import annotations

import logging
import math
import threading

import numpy as np
import pytest

from epiflow.models.stream_reader import LABEL_ARRAYS
from epiflow.models.streaming import StreamingPoseDataset
from epiflow.pipeline.config import (CalibrateConfig, DetectConfig, RunConfig, SessionConfig,
                                     SyntheticConfig)
from epiflow.pipeline.orchestrate import run_pipeline
from epiflow.store import PoseStore

s3fs = pytest.importorskip("s3fs", reason="s3:// stores need s3fs (pip install s3fs)")
moto_server = pytest.importorskip("moto.server", reason="the S3 test server is moto's "
                                                        "(pip install 'moto[server]')")

CHUNK = 16
URL = "s3://stream/s.zarr"


class _Requests:
    """What the S3 server was asked: (method, path) of each request, and the most requests it
    was answering at once."""

    def __init__(self):
        self.log, self.busy, self.most, self.lock = [], 0, 0, threading.Lock()

    def clear(self):
        with self.lock:
            self.log, self.most = [], 0

    def wrap(self, call):
        def counted(app, environ, start_response):
            with self.lock:
                self.log.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
                self.busy += 1
                self.most = max(self.most, self.busy)
            try:
                return call(app, environ, start_response)
            finally:
                with self.lock:
                    self.busy -= 1
        return counted


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto server holding, at :data:`URL`, a store of sessions a (70 frames) and b (50),
    3 cameras, chunks of 16 frames, written locally by the pipeline; yields (local path,
    requests seen by the server)."""
    local = str(tmp_path_factory.mktemp("s3stream") / "s.zarr")
    sessions = tuple(SessionConfig(name=n, synthetic=SyntheticConfig(
        clip=clip, frames=frames, n_cameras=3, seed=k))
        for k, (n, clip, frames) in enumerate([("a", "02_01", 70), ("b", "02_03", 50)]))
    report = run_pipeline(RunConfig(out=local, sessions=sessions,
                                    calibrate=CalibrateConfig(method="given"),
                                    detect=DetectConfig(chunk_frames=CHUNK)),
                          progress=False, in_process=True)
    assert not report.failures, report.failures
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    requests = _Requests()
    with pytest.MonkeyPatch.context() as patch:
        app = moto_server.DomainDispatcherApplication
        patch.setattr(app, "__call__", requests.wrap(app.__call__))
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
            patch.setenv(key, value)
        s3fs.S3FileSystem.clear_instance_cache()
        fs = s3fs.S3FileSystem()
        fs.mkdir("stream")
        fs.put(local, URL[len("s3://"):], recursive=True)
        try:
            yield local, requests
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


def _samples(stream: StreamingPoseDataset, **epoch) -> dict:
    """{(sequence, frame, camera): (x, y, w)} of one epoch."""
    out = {}
    for b in stream.epoch(**epoch):
        for i in range(len(b["frame"])):
            key = (stream.names[int(b["session"][i])], int(b["frame"][i]), int(b["camera"][i, 0]))
            out[key] = (b["x"][i].numpy(), b["y"][i].numpy(), b["w"][i].numpy())
    return out


def test_s3_stream_yields_the_local_samples(s3):
    local, _ = s3
    kwargs = dict(window=3, buffer_chunks=2, chunk_frames=CHUNK)
    want = _samples(StreamingPoseDataset(local, **kwargs), batch_size=32, seed=1)
    got = _samples(StreamingPoseDataset(URL, **kwargs), batch_size=32, seed=1)
    assert got.keys() == want.keys() and len(got) > 300
    for key, (x, y, w) in want.items():         # windows across chunk and unit edges alike
        assert np.array_equal(got[key][0], x) and np.array_equal(got[key][2], w)
        assert np.array_equal(got[key][1], y, equal_nan=True)


def _chunks(local: str, units: dict[str, int]) -> int:
    """Chunks of the arrays an epoch reads when every unit is one chunk along T and the window
    1 frame (each of those chunks read once): ``units`` of each session times its arrays'
    chunks per frame chunk."""
    store, total = PoseStore.open(local), 0
    for sid, n in units.items():
        group = store.session(sid).group
        for name in ("keypoints2d", "gt3d", *LABEL_ARRAYS):
            a = group[name]
            total += n * math.prod(math.ceil(s / c) for s, c in zip(a.shape[1:], a.chunks[1:]))
    return total


def test_s3_epoch_costs_its_chunks_read_together(s3):
    """Before, each unit re-read its session's metadata (some 60 requests), asked each file's
    size before reading it (a HEAD per chunk) and read its arrays one after another, so the
    server never had more than one array's chunks (3 here: keypoints2d's cameras) at once."""
    local, requests = s3
    stream = StreamingPoseDataset(URL, buffer_chunks=4, chunk_frames=CHUNK)
    units = {p.session_id: math.ceil(p.n_frames / CHUNK) for p in stream.plans}
    assert units == {"a": 5, "b": 3} and len(stream.units) == 8
    requests.clear()
    n = sum(len(b["frame"]) for b in stream.epoch(batch_size=64, seed=0))
    log, most = list(requests.log), requests.most
    chunks = _chunks(local, units)
    assert n > 300 and chunks == 8 * (3 + 1 + len(LABEL_ARRAYS))
    assert not [r for r in log if r[0] != "GET"], log[:5]           # no size request per file
    # every chunk once; the sessions' metadata was read once, by the planner
    assert chunks <= len(log) <= chunks + 4, (len(log), chunks)
    assert most >= 6, most                       # a group's requests in flight together
