"""A store on S3, over the real S3 HTTP protocol: a moto server started here (``ThreadedMotoServer``
on 127.0.0.1), s3fs as the client, reached the documented way (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``... in the environment). The pipeline writes the store there (in this
process, and through ``epiflow run`` on a Ray cluster whose workers did not inherit this
environment), ``inspect`` reads it, and ``train`` streams it back."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from epiflow.cli import main
from epiflow.pipeline.config import (CalibrateConfig, DetectConfig, RunConfig, SessionConfig,
                                     SyntheticConfig)
from epiflow.pipeline.orchestrate import run_pipeline
from epiflow.store import PoseStore, storage_env

s3fs = pytest.importorskip("s3fs", reason="s3:// stores need s3fs (pip install s3fs)")
moto_server = pytest.importorskip("moto.server", reason="the S3 test server is moto's "
                                                        "(pip install 'moto[server]')")


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server on 127.0.0.1 with the bucket ``epiflow``; the environment points s3fs
    at it. Yields the endpoint URL."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as env:
        for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_ENDPOINT_URL": endpoint}.items():
            env.setenv(key, value)
        s3fs.S3FileSystem.clear_instance_cache()
        s3fs.S3FileSystem().mkdir("epiflow")
        try:
            yield endpoint
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
            server.stop()


def _sessions(n: int, frames: int = 40):
    return tuple(SessionConfig(name=f"take_{i}", synthetic=SyntheticConfig(
        clip="02_01", frames=frames, n_cameras=3, seed=i)) for i in range(n))


def test_pipeline_writes_inspect_and_train_read_back(s3, tmp_path, capsys):
    url = "s3://epiflow/rig.zarr"
    report = run_pipeline(RunConfig(out=url, sessions=_sessions(2),
                                    calibrate=CalibrateConfig(method="given"),
                                    detect=DetectConfig(chunk_frames=16)),
                          progress=False, in_process=True)
    assert not report.failures, report.failures
    fs = s3fs.S3FileSystem()
    assert fs.exists("epiflow/rig.zarr.report.json")          # the report beside the store
    assert fs.exists("epiflow/rig.zarr/sessions/take_0/keypoints2d/c/2/0/0/0/0")  # a chunk
    assert not fs.exists("epiflow/rig.zarr/.epiflow-lease.json")   # given back
    store = PoseStore.open(url)
    assert store.session_ids(complete_only=True) == ["take_0", "take_1"]
    labels = store.session("take_1").labels()
    truth = store.session("take_1").ground_truth().points
    err = np.nanmedian(np.linalg.norm(labels.pseudo3d - truth, axis=-1))
    assert err < 0.03, err                                       # metres: real labels came back

    capsys.readouterr()
    assert main(["inspect", url]) == 0
    out = capsys.readouterr().out
    assert f"store {url}: 2 sessions, 2 complete" in out and "take_1" in out

    recipe = tmp_path / "rig.toml"
    recipe.write_text(f'[data]\nstore = "{url}"\nval_sessions = ["take_1"]\nstreaming = "on"\n'
                      f'shuffle_buffer = 2\n[model.mlp]\nhidden = 64\n'
                      f'[train]\nepochs = 1\nbatch_size = 64\ndevice = "cpu"\nthreads = 1\n'
                      f'progress = false\n')
    assert main(["train", str(recipe), "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "trained mlp for 1 epochs" in out and "val_gt_mm" in out
    assert f"streaming the store {url}" not in out              # progress = false: quiet
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    assert storage_env(url)["AWS_ENDPOINT_URL"] == s3 and storage_env(str(tmp_path)) == {}


def test_epiflow_run_on_a_cluster_writes_s3(s3, ray_head, capsys):
    """The cluster was started before this environment was set: its workers learn the endpoint
    and credentials from the run (store.storage_env), or they could not reach the store."""
    url = "s3://epiflow/cluster.zarr"
    assert main(["run", "--synthetic", "1", "--out", url, "--address", ray_head["address"],
                 "--set", "synthetic.frames=30", "--set", "synthetic.n_cameras=3",
                 "--quiet"]) == 0
    session = PoseStore.open(url).session("synthetic_0000")
    assert session.is_complete and session.labels().pseudo3d.shape[:2] == (30, 1)
    assert "sessions: 1 of 1 complete" in capsys.readouterr().out
