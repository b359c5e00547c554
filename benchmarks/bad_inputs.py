"""The bad-input table: every command given input a user could plausibly get wrong, and what it did.

    python benchmarks/bad_inputs.py                    # all cases -> docs/bad_inputs.md
    python benchmarks/bad_inputs.py --only triangulate # some cases (a regex on id or command),
                                                       # table to stdout, doc left alone
    python benchmarks/bad_inputs.py --jobs 2 --timeout 120 --keep /tmp/bad_inputs_work

Each case runs one ``epiflow`` command as a subprocess in a fresh folder (the working directory, so
anything a command writes by a relative path lands there too), from small inputs made here: a
3-camera synthetic capture of the packaged CMU walk (epiflow's own :mod:`epiflow.datasets.synthetic`,
40 frames, its true cameras), a 2-session synthetic store made by ``epiflow run --synthetic 2``, a
store with a failed session, a checkpoint made by ``epiflow train`` (1 epoch), untrained
checkpoints of other models (another joint set, a 41-frame temporal lifter, an image model;
:data:`OTHER_CHECKPOINTS`), tiny solid-colour videos written with OpenCV, and from
``EPIFLOW_DATA`` (default ``../shared/data``) the Pose2Sim lab calibration and one of its videos,
whole or cut with OpenCV (its first 12 frames; an empty corner of the room; cases that need them
are skipped, saying so, when absent).

Verdicts per case (columns of the table):

- **exit**: the exit code (``hang`` when it ran past ``--timeout``).
- **TB**: "Traceback" appears in stdout or stderr.
- **silent**: it exited 0 where it should have refused, or a case's own check of what it wrote or
  printed failed (e.g. a prediction from normalised keypoints, a mismatch used without a word).
- **damaged**: a file that was there before changed or vanished (sha256 of every file in the
  folder, inputs and stores), or a store given as input gained entries although the command
  refused, or a follow-up ``epiflow inspect`` of an input store failed where it worked before.
- **names**: for a refusal, the message names the offending file or argument (any of the case's
  tokens: a file name, an option such as ``--fps``, a config key).
- **wrote**: for a refusal, anything new or changed in the folder afterwards (its ``--out`` above
  all); ``-`` where the command succeeded.
- **raw warning**: a Python warning printed as the warnings module prints it (``RuntimeWarning:
  Mean of empty slice``, a torch ``UserWarning``) instead of a sentence of epiflow's own.

A case fails when it shows a traceback or a raw Python warning, is silent, damages, refuses
without naming what is wrong, writes on refusal, or hangs. Exits other than 2 on refusal are
counted apart (``--help`` promises 2 for bad input). The script exits nonzero only when it breaks itself (its base inputs cannot be
made), never because cases fail: the table is the measurement.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("EPIFLOW_DATA", REPO.parent / "shared" / "data")).resolve()
POSE2SIM_CALIB = DATA / "pose2sim_demo" / "calibration" / "Calib_qualisys.toml"
POSE2SIM_OPENPOSE = DATA / "pose2sim_demo" / "openpose_body25b_single_person"
POSE2SIM_VIDEO = DATA / "pose2sim_demo" / "single_person" / "videos" / "cam01.mp4"
DOC = REPO / "docs" / "bad_inputs.md"
REGENERATE = "python benchmarks/bad_inputs.py"
N_FRAMES = 40  # frames of the base keypoints (synthetic walk, 30 fps)
#: checkpoints of other models beside the trained ckpt.pt: file -> (joint set, model, settings)
OTHER_CHECKPOINTS = {"cmu31.pt": ("cmu31", "mlp", {}),
                     "t41.pt": ("h36m17", "temporal", {"window": 41, "dim": 8, "depth": 1,
                                                       "heads": 2}),
                     "image.pt": ("h36m17", "image", {"image_size": 32, "width": 8,
                                                      "deconv": 8})}
EMPTY_CORNER = (260, 740, 600, 1080)  # rows, columns of the demo video without anybody in them


# -- small writers (the documented on-disk layouts, written here so the cases do not depend on
#    the code under test to make their own bad inputs) ---------------------------------------
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    v = float(v)
    return "nan" if v != v else ("inf" if v == np.inf else "-inf" if v == -np.inf else repr(v))


def dump_toml(data: dict) -> str:
    """TOML text of ``data``: top-level scalars, then one table per dict (nested dicts as dotted
    tables)."""
    lines, tables = [], []

    def walk(prefix: str, d: dict) -> None:
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        if prefix and scalars:
            tables.append(f"[{prefix}]")
        (tables if prefix else lines).extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        for k, v in d.items():
            if isinstance(v, dict):
                walk(f"{prefix}.{k}" if prefix else k, v)
                if not v:
                    tables.append(f"[{prefix}.{k}]" if prefix else f"[{k}]")
    walk("", data)
    return "\n".join(lines + tables) + "\n"


def rig_tables(rig) -> dict:
    """The Pose2Sim / Anipose camera TOML tables of a rig (world->camera, metres)."""
    from scipy.spatial.transform import Rotation
    out = {}
    for cam in rig:
        out[cam.name] = {"name": cam.name, "size": [float(cam.size[0]), float(cam.size[1])],
                         "matrix": np.asarray(cam.K).tolist(),
                         "distortions": np.asarray(cam.dist)[:4].tolist(),
                         "rotation": Rotation.from_matrix(np.asarray(cam.R)).as_rotvec().tolist(),
                         "translation": np.asarray(cam.t).tolist(), "fisheye": False}
    return out


def write_video(path: Path, n_frames: int = 10, size=(64, 48), level: int = 128) -> Path:
    """A small mp4 of one flat colour (no person in it)."""
    import cv2
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    for _ in range(n_frames):
        writer.write(np.full((size[1], size[0], 3), level, np.uint8))
    writer.release()
    return path


def real_clip(name: str, n_frames: int, box: tuple[int, int, int, int] | None = None
              ) -> Callable:
    """The first ``n_frames`` of the real demo video (``box``: only rows y0:y1, columns x0:x1 of
    it), written as an mp4 at its frame rate."""
    def prep(d: Path, base: "Base") -> None:
        import cv2
        cap = cv2.VideoCapture(str(POSE2SIM_VIDEO))
        frames = [cap.read()[1] for _ in range(n_frames)]
        cap.release()
        if box is not None:
            frames = [f[box[0]:box[1], box[2]:box[3]].copy() for f in frames]
        h, w = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(d / name), cv2.VideoWriter_fourcc(*"mp4v"), 60.0, (w, h))
        for f in frames:
            writer.write(f)
        writer.release()
    return prep


# -- the base inputs ----------------------------------------------------------------------------
class Base:
    """Valid inputs every case starts from, made once in ``root``."""

    def __init__(self, root: Path, timeout: float):
        self.root, self.timeout = root, timeout
        self.notes: list[str] = []

    def path(self, name: str) -> Path:
        return self.root / name

    def build(self) -> None:
        from epiflow.datasets.synthetic import cmu_capture
        r = self.root
        cap = cmu_capture("02_01", n_cameras=3, seed=0)
        kp = cap.keypoints
        self.kp = {"keypoints": np.ascontiguousarray(kp.data[:N_FRAMES].transpose(1, 0, 2, 3)),
                   "joint_set": np.str_(kp.joint_set),
                   "camera_names": np.array(kp.camera_names, dtype=str),
                   "image_size": np.asarray(kp.image_size, np.int64), "fps": np.float64(kp.fps)}
        np.savez(r / "kp.npz", **self.kp)
        self.cams = rig_tables(cap.rig)
        (r / "cams.toml").write_text(dump_toml(self.cams))
        write_video(r / "solid.mp4")
        self._run_store()
        self._failed_store()
        self._checkpoint()
        self._model_checkpoints()

    def load(self) -> bool:
        """Reuse base inputs an earlier run left in ``root`` (``--keep``); False if incomplete."""
        names = ("kp.npz", "cams.toml", "solid.mp4", "good.zarr", "ckpt.pt", "recipe.toml",
                 *OTHER_CHECKPOINTS)
        if not all((self.root / n).exists() for n in names):
            return False
        with np.load(self.root / "kp.npz") as z:
            self.kp = {k: z[k] for k in z.files}
        self.cams = tomllib.loads((self.root / "cams.toml").read_text())
        self.sessions = sorted(x.name for x in (self.root / "good.zarr" / "sessions").iterdir()
                               if x.is_dir())
        return True

    def _cli(self, argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
        return subprocess.run(epiflow_cmd() + argv, cwd=cwd, capture_output=True, text=True,
                              env=child_env(), timeout=max(self.timeout, 300))

    def _run_store(self) -> None:
        p = self._cli(["run", "--synthetic", "2", "--out", "good.zarr", "--num-cpus", "2",
                       "--quiet", "--set", f"synthetic.frames={N_FRAMES}"], self.root)
        if p.returncode != 0 or not (self.root / "good.zarr").is_dir():
            raise RuntimeError(f"base store: epiflow run exited {p.returncode}:\n{p.stderr[-3000:]}")
        (self.root / "good.zarr.report.json").unlink(missing_ok=True)
        self.sessions = sorted(x.name for x in (self.root / "good.zarr" / "sessions").iterdir()
                               if x.is_dir())

    def _failed_store(self) -> None:
        """A store whose one session failed: 5 frames of keypoints, no cameras, so calibration
        from people has too little to work with. When ``run`` refuses that up front instead, the
        failure is recorded with the store's own ``record_failure``."""
        kp = dict(self.kp, keypoints=self.kp["keypoints"][:, :5])
        np.savez(self.root / "short.npz", **kp)
        p = self._cli(["run", "--keypoints", "short.npz", "--session", "broken", "--out",
                       "failed.zarr", "--num-cpus", "2", "--quiet"], self.root)
        (self.root / "failed.zarr.report.json").unlink(missing_ok=True)
        from epiflow.store import PoseStore
        try:
            store = PoseStore.open(self.root / "failed.zarr")
            failed = [s for s in store.session_ids() if store.session(s).attrs.get("failure")]
        except Exception:  # noqa: BLE001 - whatever went wrong, make it by hand below
            failed = []
        if not failed:
            shutil.rmtree(self.root / "failed.zarr", ignore_errors=True)
            try:
                store = PoseStore.open(self.root / "failed.zarr", mode="a")
                store.record_failure("broken", "calibrate", "too few frames to calibrate")
                self.notes.append(f"failed store: `run` on 5 frames exited {p.returncode} "
                                  f"without a failed session; the failure was recorded with "
                                  f"PoseStore.record_failure")
            except Exception as err:  # noqa: BLE001 - the cases that need it are skipped
                shutil.rmtree(self.root / "failed.zarr", ignore_errors=True)
                self.notes.append(f"no failed store could be made ({err}); its cases skipped")

    def _checkpoint(self) -> None:
        recipe = self.recipe("good.zarr")
        (self.root / "recipe.toml").write_text(recipe)
        p = self._cli(["train", "recipe.toml", "--out", "run1"], self.root)
        ckpt = self.root / "run1" / "checkpoint.pt"
        if p.returncode != 0 or not ckpt.is_file():
            raise RuntimeError(f"base checkpoint: epiflow train exited {p.returncode}:\n"
                               f"{p.stderr[-3000:]}")
        shutil.copy(ckpt, self.root / "ckpt.pt")

    def _model_checkpoints(self) -> None:
        """Checkpoints of models ``epiflow train`` cannot make from the base store (another joint
        set, an image model: it has no crops) or that would take long (a temporal lifter),
        written untrained with epiflow's own ``save_checkpoint``: what is refused is their
        kind, not their weights."""
        from epiflow.models.checkpoint import save_checkpoint
        from epiflow.models.config import (DataConfig, ExperimentConfig, ImageModelConfig,
                                           ModelConfig, build_model)
        from epiflow.models.temporal import TemporalConfig
        kinds = {"temporal": TemporalConfig, "image": ImageModelConfig}
        for name, (joint_set, model, settings) in OTHER_CHECKPOINTS.items():
            extra = {model: kinds[model](**settings)} if model in kinds else {}
            cfg = ExperimentConfig(data=DataConfig(joint_set=joint_set),
                                   model=ModelConfig(name=model, **extra))
            n_joints = 31 if joint_set == "cmu31" else 17
            save_checkpoint(self.root / name, build_model(cfg.model, n_joints), cfg)

    def recipe(self, store: str, **extra) -> str:
        """A small training recipe (TOML text) on ``store``; ``extra`` adds/replaces sections."""
        data = {"data": {"store": store, "val_sessions": [self.sessions[-1]]},
                "model": {"name": "mlp", "mlp": {"hidden": 32, "blocks": 1}},
                "train": {"epochs": 1, "batch_size": 64, "threads": 1, "progress": False}}
        for section, values in extra.items():
            data.setdefault(section, {}).update(values)
        return dump_toml(data)


def epiflow_cmd() -> list[str]:
    script = Path(sys.executable).with_name("epiflow")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from epiflow.cli import main; sys.exit(main())"]


def child_env() -> dict:
    env = dict(os.environ, EPIFLOW_DATA=str(DATA), OMP_NUM_THREADS="1", MPLBACKEND="Agg",
               OMP_WAIT_POLICY="PASSIVE", RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    env.pop("RAY_ADDRESS", None)
    return env


# -- cases --------------------------------------------------------------------------------------
Check = Callable[[Path, int, str], "tuple[bool, str]"]
#: a Python warning as the warnings module prints it ("file.py:12: RuntimeWarning: ..."); epiflow's
#: own "epiflow CMD: warning: ..." lines are what a user should see instead
RAW_WARNING = re.compile(r"\b[A-Z]\w*Warning: ")
#: MediaPipe's C++ logging (TFLite's "INFO: Created ...", absl's "W0000 00:00:..."): not epiflow's
NATIVE_LOG = re.compile(r"^(INFO: Created TensorFlow Lite|[WIE]\d{4} \d\d:\d\d)", re.M)


@dataclass
class Case:
    """One bad input. ``argv`` is the command line after ``epiflow`` (paths relative to the case's
    folder); ``prep(folder, base)`` makes the inputs; ``expect`` is ``refuse`` (must exit
    nonzero), or ``either`` / ``ok`` with ``check(folder, rc, output) -> (fine, note)`` judging
    what it did; ``names`` are the tokens a refusal's message must contain one of; ``probe``
    is a command run afterwards whose failure means an input store was damaged."""

    id: str
    command: str
    what: str
    argv: list[str]
    prep: Callable[[Path, Base], None] = lambda d, b: None
    names: tuple[str, ...] = ()
    expect: str = "refuse"
    check: Check | None = None
    probe: list[str] | None = None
    needs_data: bool = False
    slow: bool = False  # starts Ray or a detector: scheduled first


def put(d: Path, base: Base, *names: str) -> None:
    """Copy base inputs into the case folder."""
    for n in names:
        src = base.path(n)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, d / n)


def kp_with(name: str = "kp.npz", **changes) -> Callable[[Path, Base], None]:
    """Write the base keypoints with some fields changed (a value None drops the field; a
    callable gets the field's array)."""
    def prep(d: Path, base: Base) -> None:
        data = dict(base.kp)
        for k, v in changes.items():
            if v is None:
                data.pop(k, None)
            else:
                data[k] = v(data[k]) if callable(v) else v
        with open(d / name, "wb") as f:
            np.savez(f, **data)
    return prep


def cams_with(change: Callable[[dict], None], name: str = "cams.toml") -> Callable:
    """Write the base cameras after ``change(tables)`` edits them in place."""
    def prep(d: Path, base: Base) -> None:
        tables = json.loads(json.dumps(base.cams))
        change(tables)
        (d / name).write_text(dump_toml(tables))
    return prep


def both(*preps) -> Callable[[Path, Base], None]:
    def prep(d: Path, base: Base) -> None:
        for p in preps:
            p(d, base)
    return prep


def files(*names: str) -> Callable[[Path, Base], None]:
    return lambda d, base: put(d, base, *names)


def raw(name: str, content: bytes | str | None = None, size: int = 4096) -> Callable:
    """A file of ``content`` (default: ``size`` random bytes); a name ending in / is a folder."""
    def prep(d: Path, base: Base) -> None:
        p = d / name
        if name.endswith("/"):
            p.mkdir(parents=True, exist_ok=True)
            return
        p.parent.mkdir(parents=True, exist_ok=True)
        c = np.random.default_rng(len(name)).bytes(size) if content is None else content
        p.write_bytes(c.encode() if isinstance(c, str) else c)
    return prep


def truncated(src: str, name: str) -> Callable:
    def prep(d: Path, base: Base) -> None:
        b = base.path(src).read_bytes()
        (d / name).write_bytes(b[: len(b) // 2])
    return prep


def videos(folder: str, n: int, zero: int = 0, frames: int = 10) -> Callable:
    """``n`` solid-colour videos in ``folder`` (the first ``zero`` of them zero bytes)."""
    def prep(d: Path, base: Base) -> None:
        (d / folder).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            p = d / folder / f"cam{i + 1:02d}.mp4"
            if i < zero:
                p.write_bytes(b"")
            else:
                write_video(p, frames, level=40 + 60 * i)
    return prep


def zarr_v2(name: str) -> Callable:
    def prep(d: Path, base: Base) -> None:
        import zarr
        g = zarr.open_group(str(d / name), mode="w", zarr_format=2)
        g.create_array("x", shape=(4,), dtype="f4")
    return prep


def schema(name: str, version=999) -> Callable:
    """A copy of the base store whose root says schema_version ``version``."""
    def prep(d: Path, base: Base) -> None:
        put(d, base, "good.zarr")
        meta = d / "good.zarr" / "zarr.json"
        j = json.loads(meta.read_text())
        j.setdefault("attributes", {}).setdefault("epiflow", {})["schema_version"] = version
        meta.write_text(json.dumps(j))
        if name != "good.zarr":
            (d / "good.zarr").rename(d / name)
    return prep


def plain_folder(name: str) -> Callable:
    def prep(d: Path, base: Base) -> None:
        (d / name).mkdir()
        (d / name / "notes.txt").write_text("my thesis draft\n")
    return prep


def stray_group(d: Path, base: Base) -> None:
    """The base store with the empty group a rejected id ``a/b`` leaves behind (sessions/a)."""
    put(d, base, "good.zarr")
    a = d / "good.zarr" / "sessions" / "a"
    (a / "b").mkdir(parents=True)
    for g in (a, a / "b"):
        (g / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group",
                                                 "attributes": {}}))


def recipe(name: str = "recipe.toml", store: str = "good.zarr", with_store: bool = True,
           text: str | None = None, **extra) -> Callable:
    def prep(d: Path, base: Base) -> None:
        if with_store:
            put(d, base, "good.zarr")
        (d / name).write_text(text if text is not None else base.recipe(store, **extra))
    return prep


def run_config(extra: str = "", name: str = "run.toml") -> Callable:
    """A run config of the base keypoints and cameras into ``out.zarr``, plus ``extra`` TOML."""
    def prep(d: Path, base: Base) -> None:
        put(d, base, "kp.npz", "cams.toml")
        (d / name).write_text('out = "out.zarr"\n[[sessions]]\nname = "s1"\n'
                              'keypoints = "kp.npz"\ncameras = "cams.toml"\n' + extra)
    return prep


def foreign_state_dict(name: str) -> Callable:
    def prep(d: Path, base: Base) -> None:
        import torch
        torch.save(torch.nn.Sequential(torch.nn.Linear(34, 64), torch.nn.Linear(64, 51))
                   .state_dict(), d / name)
    return prep


def foreign_module(name: str) -> Callable:
    def prep(d: Path, base: Base) -> None:
        import torch
        torch.save(torch.nn.Linear(34, 51), d / name)
    return prep


class _Evil:
    """A pickle that, if loaded without weights_only, leaves a marker file behind."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def evil_pickle(name: str) -> Callable:
    def prep(d: Path, base: Base) -> None:
        import torch
        torch.save({"format": "epiflow", "payload": _Evil(str(d / "PWNED"))}, d / name)
    return prep


def ckpt_files(d: Path, base: Base) -> None:
    put(d, base, "ckpt.pt")


def no_marker(d: Path, rc: int, out: str) -> tuple[bool, str]:
    return (not (d / "PWNED").exists(), "the pickle ran" if (d / "PWNED").exists() else "")


def refusal_or_said(*words: str) -> Check:
    """Fine when it refused, or succeeded with one of ``words`` (regexes) in what it printed."""
    def check(d: Path, rc: int, out: str) -> tuple[bool, str]:
        if rc != 0:
            return True, ""
        said = any(re.search(w, out, re.I) for w in words)
        return said, "" if said else f"exit 0 without a word of {'/'.join(words)}"
    return check


def printed(*words: str) -> Check:
    def check(d: Path, rc: int, out: str) -> tuple[bool, str]:
        ok = rc == 0 and all(w.lower() in out.lower() for w in words)
        return ok, "" if ok else f"expected exit 0 and {'/'.join(words)} in the output"
    return check


def exists(*paths: str) -> Check:
    def check(d: Path, rc: int, out: str) -> tuple[bool, str]:
        missing = [p for p in paths if not (d / p).exists()]
        ok = rc == 0 and not missing
        return ok, "" if ok else f"rc {rc}, missing {missing}"
    return check


def normalised(a):
    a = a.copy()
    a[..., 0] /= 1920.0
    a[..., 1] /= 1080.0
    return a


def nan_seen(a):
    a = a.copy()
    a[:, ::2, :, :2] = np.nan
    a[:, ::2, :, 2] = 0.9
    return a


def percent_conf(a):
    a = a.copy()
    a[..., 2] *= 100.0
    return a


def negative_conf(a):
    a = a.copy()
    a[..., 2] = -np.abs(np.nan_to_num(a[..., 2])) - 0.1
    return a


def first_cam(tables: dict) -> dict:
    return tables[next(iter(tables))]


def _set(field_name: str, value) -> Callable[[dict], None]:
    def change(t: dict) -> None:
        first_cam(t)[field_name] = value
    return change


def _drop(field_name: str) -> Callable[[dict], None]:
    def change(t: dict) -> None:
        del first_cam(t)[field_name]
    return change


def _keep(n: int) -> Callable[[dict], None]:
    def change(t: dict) -> None:
        for k in list(t)[n:]:
            del t[k]
    return change


def _rename(t: dict) -> None:
    for i, k in enumerate(list(t)):
        v = t.pop(k)
        v["name"] = ["left", "right", "top"][i]
        t[v["name"]] = v


def cases() -> list[Case]:  # noqa: C901 - a table
    K, C, O = "kp.npz", "cams.toml", "out.npz"
    kp_in = files(K, C)
    tri = ["triangulate", "--keypoints", K, "--cameras", C, "--out", O]
    L: list[Case] = []

    def add(*args, **kw):
        L.append(Case(*args, **kw))

    # -- triangulate ---------------------------------------------------------------------------
    T = "triangulate"
    add("tri-00", T, "control: valid keypoints and cameras", tri, kp_in, expect="ok",
        check=exists(O))
    add("tri-01", T, "--keypoints file missing", tri, files(C), (K, "--keypoints"))
    add("tri-02", T, "--cameras file missing", tri, files(K), (C, "--cameras"))
    add("tri-03", T, "--cameras is a folder", ["triangulate", "--keypoints", K, "--cameras",
        "camsdir", "--out", O], both(files(K), raw("camsdir/")), ("camsdir", "--cameras"))
    add("tri-04", T, "--keypoints: random bytes named .npz", tri, both(files(C), raw(K)),
        (K, "--keypoints"))
    add("tri-05", T, "--keypoints: zero-byte .npz", tri, both(files(C), raw(K, b"")),
        (K, "--keypoints"))
    add("tri-06", T, "npz without a `keypoints` array", tri,
        both(files(C), kp_with(keypoints=None)), (K, "keypoints"))
    add("tri-07", T, "keypoints of ndim 3 (C, T, J*3)", tri,
        both(files(C), kp_with(keypoints=lambda a: a.reshape(a.shape[0], a.shape[1], -1))),
        (K,))
    add("tri-08", T, "zero frames (C, 0, J, 3)", tri,
        both(files(C), kp_with(keypoints=lambda a: a[:, :0])), (K,))
    add("tri-09", T, "zero cameras (0, T, J, 3)", tri,
        both(files(C), kp_with(keypoints=lambda a: a[:0], camera_names=np.array([], str),
                               image_size=np.zeros((0, 2), np.int64))), (K,))
    add("tri-10", T, "integer keypoints dtype", tri,
        both(files(C), kp_with(keypoints=lambda a: np.nan_to_num(a).astype(np.int32))), (K,))
    add("tri-11", T, "text keypoints dtype", tri,
        both(files(C), kp_with(keypoints=lambda a: a.astype(str))), (K,))
    add("tri-12", T, "confidence in percent (0-100)", tri,
        both(files(C), kp_with(keypoints=percent_conf)), (K,))
    add("tri-13", T, "NaN x, y with confidence 0.9 (every other frame)", tri,
        both(files(C), kp_with(keypoints=nan_seen)), (K,), expect="either",
        check=refusal_or_said("nan", "missing"))
    add("tri-14", T, "keypoints in normalised units (0-1)", tri,
        both(files(C), kp_with(keypoints=normalised)), (K,))
    add("tri-15", T, "unknown joint set inside the npz", tri,
        both(files(C), kp_with(joint_set=np.str_("coco_wholebody"))), (K, "joint set",
                                                                         "joint_set"))
    add("tri-16", T, "--joint-set unknown", tri + ["--joint-set", "body99"], kp_in,
        ("--joint-set", "joint_set", "body99"))
    add("tri-17", T, "cameras: singular K (all zeros)", tri,
        both(files(K), cams_with(_set("matrix", [[0.0] * 3] * 3))), (C,))
    add("tri-18", T, "cameras: NaN in K", tri,
        both(files(K), cams_with(_set("matrix", [[float("nan"), 0.0, 960.0], [0.0, 1200.0,
                                                                             540.0],
                                                 [0.0, 0.0, 1.0]]))), (C,))
    add("tri-19", T, "cameras: translation 1e300", tri,
        both(files(K), cams_with(_set("translation", [1e300, 0.0, 0.0]))), (C,))
    add("tri-20", T, "cameras: a camera lacks `matrix`", tri,
        both(files(K), cams_with(_drop("matrix"))), (C, "matrix"))
    add("tri-21", T, "cameras: 2 cameras for 3 in the keypoints", tri,
        both(files(K), cams_with(_keep(2))), (C, "cam_03"))
    add("tri-22", T, "cameras named left/right/top (keypoints cam_01..03)", tri,
        both(files(K), cams_with(_rename)), (C, "left", "cam_01"), expect="either",
        check=refusal_or_said("order", "match"))
    add("tri-23", T, "cameras: random bytes named .toml", tri, both(files(K), raw(C)), (C,))
    add("tri-24", T, "cameras: another capture's (Pose2Sim lab, 4 cameras)",
        ["triangulate", "--keypoints", K, "--cameras", str(POSE2SIM_CALIB), "--out", O],
        files(K), ("Calib_qualisys", "--cameras"), needs_data=True)
    add("tri-25", T, "--out equal to --keypoints", ["triangulate", "--keypoints", K, "--cameras",
        C, "--out", K], kp_in, (K, "--out"))
    add("tri-26", T, "--out equal to --cameras", ["triangulate", "--keypoints", K, "--cameras",
        C, "--out", C], kp_in, (C, "--out"))
    add("tri-27", T, "--out is an existing folder", ["triangulate", "--keypoints", K,
        "--cameras", C, "--out", "outdir"], both(kp_in, raw("outdir/")), ("outdir", "--out"))
    add("tri-28", T, "--smooth butterworth --fps 0", tri + ["--smooth", "butterworth", "--fps",
        "0"], kp_in, ("--fps", "fps"))
    add("tri-29", T, "--cutoff-hz 0 with smoothing", tri + ["--smooth", "butterworth",
        "--cutoff-hz", "0"], kp_in, ("--cutoff-hz", "cutoff"))
    add("tri-30", T, "--gate-px 0", tri + ["--gate-px", "0"], kp_in, ("--gate-px", "gate"))
    add("tri-31", T, "--min-confidence 1.5 (above any confidence)", tri + ["--min-confidence",
        "1.5"], kp_in, ("--min-confidence", "min_confidence"))

    # -- calibrate -----------------------------------------------------------------------------
    T = "calibrate"
    cal = ["calibrate", "--keypoints", K, "--out", "calib.toml"]
    add("cal-00", T, "control: valid keypoints", cal, files(K), expect="ok",
        check=exists("calib.toml", "calib.report.json"))
    add("cal-01", T, "--keypoints file missing", cal, names=(K, "--keypoints"))
    add("cal-02", T, "--videos folder missing", ["calibrate", "--videos", "vids", "--out",
        "calib.toml"], names=("vids", "--videos"))
    add("cal-03", T, "--keypoints: random bytes named .npz", cal, raw(K), (K,))
    add("cal-04", T, "--keypoints: zero-byte .npz", cal, raw(K, b""), (K,))
    add("cal-05", T, "--keypoints: empty folder (no OpenPose folders)", ["calibrate",
        "--keypoints", "kpdir", "--out", "calib.toml"], raw("kpdir/"), ("kpdir",))
    add("cal-06", T, "keypoints with zero frames", cal,
        kp_with(keypoints=lambda a: a[:, :0]), (K,))
    add("cal-07", T, "keypoints in normalised units", cal, kp_with(keypoints=normalised), (K,))
    add("cal-08", T, "--intrinsics file missing", cal + ["--intrinsics", "lab.toml"], files(K),
        ("lab.toml", "--intrinsics"))
    add("cal-09", T, "--intrinsics: 2 cameras for 3", cal + ["--intrinsics", C],
        both(files(K), cams_with(_keep(2))), (C, "cam_03"))
    add("cal-10", T, "--intrinsics: singular K", cal + ["--intrinsics", C],
        both(files(K), cams_with(_set("matrix", [[0.0] * 3] * 3))), (C,))
    add("cal-11", T, "--intrinsics: another capture's (Pose2Sim, 4 cameras)",
        cal + ["--intrinsics", str(POSE2SIM_CALIB)], files(K), ("Calib_qualisys",
                                                                "--intrinsics"),
        needs_data=True)
    add("cal-12", T, "--out equal to --keypoints", ["calibrate", "--keypoints", K, "--out", K],
        files(K), (K, "--out"))
    add("cal-13", T, "--out equal to --intrinsics", cal[:-1] + [C, "--intrinsics", C],
        files(K, C), (C, "--out"))
    add("cal-14", T, "--out is an existing folder", ["calibrate", "--keypoints", K, "--out",
        "outdir"], both(files(K), raw("outdir/")), ("outdir", "--out"))
    add("cal-15", T, "--subject-height 0", cal + ["--subject-height", "0"], files(K),
        ("--subject-height", "subject_height", "height"))
    add("cal-16", T, "--joint-set unknown", cal + ["--joint-set", "body99"], files(K),
        ("--joint-set", "joint_set", "body99"))
    add("cal-17", T, "--set unknown key", cal + ["--set", "roundz=2"], files(K),
        ("roundz", "--set"))
    add("cal-18", T, "--config with an unknown key", cal + ["--config", "c.toml"],
        both(files(K), raw("c.toml", "roundz = 2\n")), ("roundz", "c.toml"))
    add("cal-19", T, "--videos: a folder with one video", ["calibrate", "--videos", "vids",
        "--out", "calib.toml"], videos("vids", 1), ("vids", "one", "1 video"), slow=True)
    add("cal-20", T, "--videos: a zero-byte video", ["calibrate", "--videos", "vids", "--out",
        "calib.toml"], videos("vids", 2, zero=1), ("cam01.mp4",), slow=True)
    add("cal-21", T, "--videos: two videos with no person (solid colour)", ["calibrate",
        "--videos", "vids", "--out", "calib.toml"], videos("vids", 2), ("vids", "person",
                                                                          "detect"),
        slow=True)
    add("cal-22", T, "--image-size 0 0 with OpenPose JSON (real, BODY_25B)",
        ["calibrate", "--keypoints", str(POSE2SIM_OPENPOSE), "--joint-set", "body25b",
         "--image-size", "0", "0", "--out", "calib.toml"], names=("--image-size", "image_size"),
        needs_data=True)

    # -- run -------------------------------------------------------------------------------------
    T = "run"
    q = ["--num-cpus", "1", "--quiet"]
    rk = ["run", "--keypoints", K, "--cameras", C]
    runkp = rk + ["--out", "S.zarr"] + q
    add("run-00", T, "control: keypoints and cameras", runkp, kp_in, expect="ok",
        check=exists("S.zarr"), slow=True)
    add("run-01", T, "--keypoints file missing", runkp, files(C), (K, "--keypoints"),
        slow=True)
    add("run-02", T, "--videos folder missing", ["run", "--videos", "vids", "--out",
        "S.zarr"] + q, names=("vids", "--videos"), slow=True)
    add("run-03", T, "config file missing", ["run", "nope.toml"] + q, names=("nope.toml",))
    add("run-04", T, "--videos: a folder with one video", ["run", "--videos", "vids", "--out",
        "S.zarr"] + q, videos("vids", 1), ("vids",), slow=True)
    add("run-05", T, "--videos: a folder with no videos", ["run", "--videos", "vids", "--out",
        "S.zarr"] + q, raw("vids/"), ("vids",), slow=True)
    add("run-06", T, "--videos: one of two videos is zero bytes", ["run", "--videos", "vids",
        "--out", "S.zarr"] + q, videos("vids", 2, zero=1), ("cam01.mp4",), slow=True)
    add("run-07", T, "--session a/b into an existing store", rk +
        ["--session", "a/b", "--out", "good.zarr"] + q, files(K, C, "good.zarr"),
        ("a/b", "--session"), probe=["inspect", "good.zarr"], slow=True)
    add("run-08", T, "--session ..", runkp + ["--session", ".."], kp_in, ("..", "--session"),
        slow=True)
    add("run-09", T, "--session /abs (an absolute path)", runkp + ["--session", "@ABS@"],
        kp_in, ("@ABS@", "--session"), slow=True)
    add("run-10", T, "--session '' (empty)", runkp + ["--session", ""], kp_in, ("--session",
                                                                                "session id"),
        slow=True, expect="either", check=refusal_or_said("session"))
    add("run-11", T, "--out is a zarr v2 store", rk + ["--out", "v2.zarr"] + q,
        both(kp_in, zarr_v2("v2.zarr")), ("v2.zarr", "--out"), slow=True)
    add("run-12", T, "--out is an npz file", rk + ["--out", "poses.npz"] + q,
        both(kp_in, raw("poses.npz")), ("poses.npz", "--out"), slow=True)
    add("run-13", T, "--out is a plain folder with a file in it", rk +
        ["--out", "thesis"] + q, both(kp_in, plain_folder("thesis")), ("thesis", "--out"),
        slow=True)
    add("run-14", T, "--out is a store of schema version 999", rk + ["--out",
        "good.zarr"] + q, both(kp_in, schema("good.zarr")), ("good.zarr", "schema"), slow=True)
    add("run-15", T, "--out equal to --keypoints", rk + ["--out", K] + q, kp_in,
        (K, "--out"), slow=True)
    add("run-16", T, "keypoints in normalised units", runkp, both(files(C),
        kp_with(keypoints=normalised)), (K,), slow=True)
    add("run-17", T, "cameras: singular K", runkp, both(files(K), cams_with(
        _set("matrix", [[0.0] * 3] * 3))), (C,), slow=True)
    add("run-18", T, "config: [calibrate.people] unknown key", ["run", "run.toml"] + q,
        run_config("[calibrate.people]\nroundz = 2\n"), ("roundz", "calibrate.people"),
        slow=True)
    add("run-19", T, "config: [triangulate.options] unknown key", ["run", "run.toml"] + q,
        run_config("[triangulate.options]\ngate_pixels = 10\n"), ("gate_pixels",
                                                                   "triangulate.options"),
        slow=True)
    add("run-20", T, "config: wrong type (detect.chunk_frames = \"many\")", ["run", "run.toml"]
        + q, run_config('[detect]\nchunk_frames = "many"\n'), ("chunk_frames",))
    add("run-21", T, "config: unknown top-level section [detekt]", ["run", "run.toml"] + q,
        run_config("[detekt]\nchunk_frames = 10\n"), ("detekt",))
    add("run-22", T, "config: random bytes named .toml", ["run", "run.toml"] + q,
        raw("run.toml"), ("run.toml",))
    add("run-23", T, "--set unknown key", runkp + ["--set", "detect.chunk_framez=25"], kp_in,
        ("chunk_framez",))
    add("run-24", T, "--set bad value (detect.chunk_frames=abc)", runkp + ["--set",
        "detect.chunk_frames=abc"], kp_in, ("chunk_frames",))
    add("run-25", T, "--set detect.chunk_frames=0", runkp + ["--set", "detect.chunk_frames=0"],
        kp_in, ("chunk_frames",))
    add("run-26", T, "--set store.joint_set=\"coco99\" (unknown joint set)", runkp +
        ["--set", 'store.joint_set="coco99"'], kp_in, ("joint_set", "coco99"))
    add("run-27", T, "--num-cpus -1", runkp[:-3] + ["--num-cpus", "-1", "--quiet"], kp_in,
        ("--num-cpus", "num_cpus"), slow=True)
    add("run-28", T, "no input at all (no config, no --videos)", ["run"] + q,
        names=("--videos", "config", "--keypoints"))
    add("run-29", T, "--cameras without a session source", ["run", "--cameras", C, "--out",
        "S.zarr"] + q, files(C), ("--cameras",))
    add("run-30", T, "--videos is a file", ["run", "--videos", K, "--out", "S.zarr"] + q,
        files(K), (K, "--videos"), slow=True)

    # -- inspect ----------------------------------------------------------------------------------
    T = "inspect"
    add("ins-00", T, "control: a good store", ["inspect", "good.zarr"], files("good.zarr"),
        expect="ok", check=printed("synthetic_0000"))
    add("ins-01", T, "store missing", ["inspect", "nostore.zarr"], names=("nostore.zarr",))
    add("ins-02", T, "a zarr v2 store", ["inspect", "v2.zarr"], zarr_v2("v2.zarr"),
        ("v2.zarr",))
    add("ins-03", T, "an npz given as the store", ["inspect", K], files(K), (K,))
    add("ins-04", T, "a plain folder given as the store", ["inspect", "thesis"],
        plain_folder("thesis"), ("thesis",))
    add("ins-05", T, "a store of schema version 999", ["inspect", "good.zarr"],
        schema("good.zarr"), ("good.zarr", "schema"))
    add("ins-06", T, "a store whose session failed", ["inspect", "failed.zarr"],
        files("failed.zarr"), expect="ok", check=printed("broken", "fail"))
    add("ins-07", T, "--session an id the store does not have", ["inspect", "good.zarr",
        "--session", "nope"], files("good.zarr"), ("nope",))
    add("ins-08", T, "--session ../..", ["inspect", "good.zarr", "--session", "../.."],
        files("good.zarr"), ("../..", "--session"))
    add("ins-09", T, "a store with the stray group a bad id left (sessions/a/b)",
        ["inspect", "good.zarr"], stray_group, expect="either",
        check=printed("synthetic_0000"))
    add("ins-10", T, "a zero-byte zarr.json in the store", ["inspect", "good.zarr"],
        both(files("good.zarr"), lambda d, b: (d / "good.zarr" / "zarr.json").write_bytes(b"")),
        ("good.zarr", "zarr.json"))

    # -- export -----------------------------------------------------------------------------------
    T = "export"
    exs = ["export", "good.zarr", "--session", "synthetic_0000"]
    add("exp-00", T, "control: a store session to TRC", exs + ["--out", "p.trc"],
        files("good.zarr"), expect="ok", check=exists("p.trc"))
    add("exp-01", T, "source missing", ["export", "none.zarr", "--out", "p.trc"],
        names=("none.zarr",))
    add("exp-02", T, "--out with an unknown extension (.xyz)", exs + ["--out", "p.xyz"],
        files("good.zarr"), ("p.xyz", "--out", "--format"))
    add("exp-03", T, "--out equal to the source poses npz", ["export", "poses.npz", "--out",
        "poses.npz"], prep=lambda d, b: _poses(d), names=("poses.npz", "--out"))
    add("exp-04", T, "source a zarr v2 store", ["export", "v2.zarr", "--out", "p.trc"],
        zarr_v2("v2.zarr"), ("v2.zarr",))
    add("exp-05", T, "source a keypoints npz (2D, not poses)", ["export", K, "--out", "p.trc"],
        files(K), (K,))
    add("exp-06", T, "source a plain folder", ["export", "thesis", "--out", "p.trc"],
        plain_folder("thesis"), ("thesis",))
    add("exp-07", T, "source a store of schema version 999", exs + ["--out", "p.trc"],
        schema("good.zarr"), ("good.zarr", "schema"))
    add("exp-08", T, "--session the store does not have", ["export", "good.zarr", "--session",
        "nope", "--out", "p.trc"], files("good.zarr"), ("nope",))
    add("exp-09", T, "--session ..", ["export", "good.zarr", "--session", "..", "--out",
        "p.trc"], files("good.zarr"), ("..", "--session"))
    add("exp-10", T, "two sessions, no --session", ["export", "good.zarr", "--out", "p.trc"],
        files("good.zarr"), ("--session",))
    add("exp-11", T, "a failed session's labels", ["export", "failed.zarr", "--out", "p.trc"],
        files("failed.zarr"), ("broken", "failed"))
    add("exp-12", T, "source: random bytes named .npz", ["export", "r.npz", "--out", "p.trc"],
        raw("r.npz"), ("r.npz",))
    add("exp-13", T, "--fps 0 with a poses file", ["export", "poses.npz", "--out", "p.trc",
        "--fps", "0"], prep=lambda d, b: _poses(d), names=("--fps", "fps"))
    add("exp-14", T, "--out is an existing folder", exs + ["--out", "dir.trc"],
        both(files("good.zarr"), raw("dir.trc/")), ("dir.trc", "--out"))
    add("exp-15", T, "--array gt3d of a session without ground truth", ["export", "failed.zarr",
        "--array", "gt3d", "--out", "p.trc"], files("failed.zarr"), ("gt3d",))
    add("exp-16", T, "--out cameras.toml over the store's own zarr.json", exs +
        ["--out", "good.zarr/zarr.json", "--format", "toml"], files("good.zarr"),
        ("zarr.json", "--out"))

    # -- train ------------------------------------------------------------------------------------
    T = "train"
    tr = ["train", "recipe.toml", "--out", "run"]
    add("trn-00", T, "control: a small recipe", tr, recipe(), expect="ok",
        check=exists("run/checkpoint.pt"))
    add("trn-01", T, "recipe missing", tr, names=("recipe.toml",))
    add("trn-02", T, "recipe: unknown top-level section [trian]", tr,
        recipe(trian={"epochs": 1}), ("trian",))
    add("trn-03", T, "recipe: unknown key train.epochz", tr, recipe(train={"epochz": 3}),
        ("epochz",))
    add("trn-04", T, "recipe: wrong type train.epochs = \"ten\"", tr,
        recipe(train={"epochs": "ten"}), ("epochs",))
    add("trn-05", T, "override unknown key (train.epochz=2)", tr + ["train.epochz=2"],
        recipe(), ("epochz",))
    add("trn-06", T, "train.epochs=0", tr + ["train.epochs=0"], recipe(), ("epochs",))
    add("trn-07", T, "train.batch_size=0", tr + ["train.batch_size=0"], recipe(),
        ("batch_size",))
    add("trn-08", T, "--out an existing file", ["train", "recipe.toml", "--out", "notes.txt"],
        both(recipe(), raw("notes.txt", "my notes\n")), ("notes.txt", "--out"))
    add("trn-09", T, "--out the recipe itself", ["train", "recipe.toml", "--out",
        "recipe.toml"], recipe(), ("recipe.toml", "--out"))
    add("trn-10", T, "resume from a zero-byte checkpoint.pt", tr,
        both(recipe(), raw("run/checkpoint.pt", b"")), ("checkpoint.pt", "--fresh"))
    add("trn-11", T, "resume from random bytes checkpoint.pt", tr,
        both(recipe(), raw("run/checkpoint.pt")), ("checkpoint.pt", "--fresh"))
    add("trn-12", T, "resume from a truncated checkpoint.pt", tr,
        both(recipe(), raw("run/"), lambda d, b: truncated("ckpt.pt", "run/checkpoint.pt")(d, b)),
        ("checkpoint.pt", "--fresh"))
    add("trn-13", T, "data.store missing (no [data.source])", tr,
        recipe(store="none.zarr", with_store=False), ("none.zarr", "store"))
    add("trn-14", T, "data.store a zarr v2 store", tr,
        both(recipe(store="v2.zarr", with_store=False), zarr_v2("v2.zarr")), ("v2.zarr",))
    add("trn-15", T, "data.store an npz", tr, both(recipe(store=K, with_store=False),
                                                    files(K)), (K,))
    add("trn-16", T, "data.store of schema version 999", tr, both(recipe(with_store=False),
                                                                   schema("good.zarr")),
        ("good.zarr", "schema"))
    add("trn-17", T, "data.joint_set unknown", tr, recipe(data={"joint_set": "coco99"}),
        ("joint_set", "coco99"))
    add("trn-18", T, "data.val_sessions names a missing session", tr,
        recipe(data={"val_sessions": ["nope"]}), ("nope", "val_sessions"))
    add("trn-19", T, "model.name unknown", tr, recipe(model={"name": "resnet"}),
        ("resnet", "model.name", "name"))
    add("trn-20", T, "data.store whose only session failed", tr,
        both(recipe(store="failed.zarr", with_store=False, data={"val_sessions": []}),
             files("failed.zarr")), ("failed.zarr", "broken"))
    add("trn-21", T, "model.temporal.window=41, longer than every session (40 frames)",
        tr + ['model.name="temporal"', "model.temporal.window=41"], recipe(),
        ("model.temporal.window",))
    add("trn-22", T, "--init a checkpoint of another joint set (cmu31)", tr + ["--init",
        "cmu31.pt"], both(recipe(), files("cmu31.pt")), ("cmu31.pt", "data.joint_set"))
    add("trn-23", T, "model.name=image on a store without person crops",
        tr + ['model.name="image"'], recipe(), ("good.zarr", "crops"))

    # -- evaluate ---------------------------------------------------------------------------------
    T = "evaluate"
    ev = ["evaluate", "ckpt.pt", "--store", "good.zarr"]
    ev_in = files("ckpt.pt", "good.zarr")
    add("evl-00", T, "control: checkpoint and store", ev + ["--out", "m.json"], ev_in,
        expect="ok", check=exists("m.json"))
    add("evl-01", T, "checkpoint missing", ev, files("good.zarr"), ("ckpt.pt",))
    add("evl-02", T, "zero-byte checkpoint", ev, both(files("good.zarr"), raw("ckpt.pt", b"")),
        ("ckpt.pt",))
    add("evl-03", T, "random bytes checkpoint", ev, both(files("good.zarr"), raw("ckpt.pt")),
        ("ckpt.pt",))
    add("evl-04", T, "truncated checkpoint", ev, both(files("good.zarr"),
                                                      truncated("ckpt.pt", "ckpt.pt")),
        ("ckpt.pt",))
    add("evl-05", T, "another model's state_dict (torch.save)", ev,
        both(files("good.zarr"), foreign_state_dict("ckpt.pt")), ("ckpt.pt",))
    add("evl-06", T, "a pickle that runs code when loaded", ev,
        both(files("good.zarr"), evil_pickle("ckpt.pt")), ("ckpt.pt",), expect="either",
        check=no_marker)
    add("evl-07", T, "--store missing", ev, files("ckpt.pt"), ("good.zarr", "--store"))
    add("evl-08", T, "--store a zarr v2 store", ["evaluate", "ckpt.pt", "--store", "v2.zarr"],
        both(files("ckpt.pt"), zarr_v2("v2.zarr")), ("v2.zarr",))
    add("evl-09", T, "--store an npz", ["evaluate", "ckpt.pt", "--store", K],
        files("ckpt.pt", K), (K,))
    add("evl-10", T, "--store of schema version 999", ev, both(files("ckpt.pt"),
                                                              schema("good.zarr")),
        ("good.zarr", "schema"))
    add("evl-11", T, "--session the store does not have", ev + ["--session", "nope"], ev_in,
        ("nope",))
    add("evl-12", T, "--store without ground truth (failed session)", ["evaluate", "ckpt.pt",
        "--store", "failed.zarr"], files("ckpt.pt", "failed.zarr"), ("failed.zarr", "gt3d"))
    add("evl-13", T, "--out equal to the checkpoint", ev + ["--out", "ckpt.pt"], ev_in,
        ("ckpt.pt", "--out"))
    add("evl-14", T, "--out is an existing folder", ev + ["--out", "mdir"],
        both(ev_in, raw("mdir/")), ("mdir", "--out"))
    add("evl-15", T, "a full pickled torch module (not weights)", ev,
        both(files("good.zarr"), foreign_module("ckpt.pt")), ("ckpt.pt",))
    add("evl-16", T, "an image model's checkpoint, a store without person crops",
        ["evaluate", "image.pt", "--store", "good.zarr"], files("image.pt", "good.zarr"),
        ("image.pt", "crops"))
    add("evl-17", T, "a 41-frame temporal window, sessions of 40 frames",
        ["evaluate", "t41.pt", "--store", "good.zarr"], files("t41.pt", "good.zarr"),
        ("t41.pt", "window"))
    add("evl-18", T, "a checkpoint of another joint set (cmu31)",
        ["evaluate", "cmu31.pt", "--store", "good.zarr"], files("cmu31.pt", "good.zarr"),
        ("cmu31",))

    # -- predict ----------------------------------------------------------------------------------
    T = "predict"
    pr = ["predict", "ckpt.pt", "--keypoints", K, "--camera", "cam_01", "--out", "pred.npz",
          "--no-plot"]
    pr_in = files("ckpt.pt", K)
    add("prd-00", T, "control: keypoints of cam_01", pr, pr_in, expect="ok",
        check=exists("pred.npz"))
    add("prd-01", T, "checkpoint missing", pr, files(K), ("ckpt.pt",))
    add("prd-02", T, "zero-byte checkpoint", pr, both(files(K), raw("ckpt.pt", b"")),
        ("ckpt.pt",))
    add("prd-03", T, "random bytes checkpoint", pr, both(files(K), raw("ckpt.pt")),
        ("ckpt.pt",))
    add("prd-04", T, "another model's state_dict", pr, both(files(K),
                                                            foreign_state_dict("ckpt.pt")),
        ("ckpt.pt",))
    add("prd-05", T, "--keypoints missing", pr, files("ckpt.pt"), (K, "--keypoints"))
    add("prd-06", T, "--keypoints without --camera", pr[:4] + pr[6:], pr_in, ("--camera",))
    add("prd-07", T, "--camera not in the keypoints", pr[:5] + ["cam_09"] + pr[6:], pr_in,
        ("cam_09", "--camera"))
    add("prd-08", T, "--camera not in --calibration", pr + ["--calibration", "c2.toml"],
        both(pr_in, cams_with(_rename, "c2.toml")), ("cam_01", "c2.toml"))
    add("prd-09", T, "--calibration missing", pr + ["--calibration", C], pr_in,
        (C, "--calibration"))
    add("prd-10", T, "--calibration singular K", pr + ["--calibration", C],
        both(pr_in, cams_with(_set("matrix", [[0.0] * 3] * 3))), (C,))
    add("prd-11", T, "keypoints in normalised units", pr, both(files("ckpt.pt"),
                                                               kp_with(keypoints=normalised)),
        (K,))
    add("prd-12", T, "keypoints with zero frames", pr, both(files("ckpt.pt"), kp_with(
        keypoints=lambda a: a[:, :0])), (K,))
    add("prd-13", T, "--keypoints: random bytes named .npz", pr, both(files("ckpt.pt"),
                                                                      raw(K)), (K,))
    add("prd-14", T, "--out equal to --keypoints", pr[:7] + [K, "--no-plot"], pr_in,
        (K, "--out"))
    add("prd-15", T, "--out equal to the checkpoint", pr[:7] + ["ckpt.pt", "--no-plot"], pr_in,
        ("ckpt.pt", "--out"))
    add("prd-16", T, "--out is an existing folder", pr[:7] + ["pdir", "--no-plot"],
        both(pr_in, raw("pdir/")), ("pdir", "--out"))
    pv = ["predict", "ckpt.pt", "--video", "v.mp4", "--out", "pred.npz", "--no-plot"]
    add("prd-17", T, "--video missing", pv, files("ckpt.pt"), ("v.mp4", "--video"))
    add("prd-18", T, "--video zero bytes", pv, both(files("ckpt.pt"), raw("v.mp4", b"")),
        ("v.mp4",))
    add("prd-19", T, "--video a text file named .mp4", pv, both(files("ckpt.pt"),
        raw("v.mp4", "not a video\n" * 20)), ("v.mp4",))
    add("prd-20", T, "--video with no person (solid colour)", pv, both(files("ckpt.pt"),
        lambda d, b: write_video(d / "v.mp4")), ("v.mp4", "person"), expect="either",
        check=refusal_or_said(r"(^|\s)0/10 frames", "no person"), slow=True)
    add("prd-21", T, "--calibration for 1920x1080 images, the real video is 1080x1920",
        ["predict", "ckpt.pt", "--video", str(POSE2SIM_VIDEO), "--calibration", C, "--out",
         "pred.npz", "--no-plot"], files("ckpt.pt", C), (C, "--calibration", "1080"),
        needs_data=True, slow=True)
    add("prd-23", T, "--camera cam_07 not in --calibration (real video)",
        ["predict", "ckpt.pt", "--video", str(POSE2SIM_VIDEO), "--calibration", "lab.toml",
         "--camera", "cam_07", "--out", "pred.npz", "--no-plot"],
        both(files("ckpt.pt"), lambda d, b: shutil.copy(POSE2SIM_CALIB, d / "lab.toml")),
        ("cam_07",), needs_data=True, slow=True)
    add("prd-22", T, "--keypoints an OpenPose-less empty folder", pr[:3] + ["kpdir"] + pr[4:],
        both(files("ckpt.pt"), raw("kpdir/")), ("kpdir",))
    add("prd-24", T, "a checkpoint of another joint set (cmu31), h36m17 --keypoints",
        ["predict", "cmu31.pt"] + pr[2:], files("cmu31.pt", K), ("cmu31",))
    add("prd-25", T, "a checkpoint of another joint set (cmu31), a real video (MediaPipe)",
        ["predict", "cmu31.pt", "--video", str(POSE2SIM_VIDEO), "--out", "pred.npz",
         "--no-plot"], files("cmu31.pt"), ("cmu31",), needs_data=True, slow=True)
    add("prd-26", T, "an image model's checkpoint given --keypoints", ["predict", "image.pt"] +
        pr[2:], files("image.pt", K), ("image.pt", "--keypoints"))
    add("prd-27", T, "a 41-frame temporal window, --keypoints of 10 frames",
        ["predict", "t41.pt"] + pr[2:], both(files("t41.pt"), kp_with(
            keypoints=lambda a: a[:, :10])), (K, "window"))
    real12 = ["--video", "v.mp4", "--out", "pred.npz", "--no-plot"]
    add("prd-28", T, "a 41-frame temporal window, the real video cut to 12 frames",
        ["predict", "t41.pt"] + real12, both(files("t41.pt"), real_clip("v.mp4", 12)),
        ("v.mp4", "window"), needs_data=True, slow=True)
    add("prd-29", T, "control: the real video (12 frames) without --calibration says what it "
        "assumed", ["predict", "ckpt.pt"] + real12 + ["--no-adapt"],
        both(files("ckpt.pt"), real_clip("v.mp4", 12)), expect="ok",
        check=printed("intrinsics are unknown", "principal point at the image centre (539.5, "
                      "959.5) px of the 1080x1920 images", "focal length 1920 px"),
        needs_data=True, slow=True)
    add("prd-30", T, "--video with no person: an empty corner of the real lab video",
        pv, both(files("ckpt.pt"), real_clip("v.mp4", 30, EMPTY_CORNER)), ("v.mp4", "person"),
        expect="either", check=refusal_or_said(r"(^|\s)0/30 frames", "no person"),
        needs_data=True, slow=True)

    # -- compare-cameras --------------------------------------------------------------------------
    T = "compare-cameras"
    cmp = ["compare-cameras", C, "b.toml"]
    add("cmp-00", T, "control: the same cameras on both sides", ["compare-cameras", C, C],
        files(C), expect="ok", check=printed("3 cameras in common", "relative rotations"))
    add("cmp-01", T, "A missing", ["compare-cameras", "absent.toml", C], files(C),
        ("absent.toml", "argument A"))
    add("cmp-02", T, "B of an unknown format (.yaml)", ["compare-cameras", C, "b.yaml"],
        both(files(C), raw("b.yaml", "cameras: []\n")), ("b.yaml", "argument B"))
    add("cmp-03", T, "B: random bytes named .toml", cmp, both(files(C), raw("b.toml")),
        ("b.toml", "argument B"))
    add("cmp-04", T, "no camera in common (cam_01..03 vs left, right)", cmp,
        both(files(C), cams_with(lambda t: (_rename(t), _keep(2)(t)), "b.toml")),
        ("b.toml", C))
    add("cmp-05", T, "A is a folder", ["compare-cameras", "camsdir", C],
        both(files(C), raw("camsdir/")), ("camsdir", "argument A"))
    add("cmp-06", T, "A is a keypoints npz", ["compare-cameras", K, C], kp_in, (K, "argument A"))
    add("cmp-07", T, "B: a camera lacks `matrix`", cmp,
        both(files(C), cams_with(_drop("matrix"), "b.toml")), ("b.toml", "matrix"))
    add("cmp-08", T, "control: two of the cameras against the lab (Pose2Sim, 4 cameras)",
        ["compare-cameras", C, str(POSE2SIM_CALIB)], files(C), expect="ok",
        check=printed("3 cameras in common", "only in B: ['cam_04']"), needs_data=True)

    # -- demo -------------------------------------------------------------------------------------
    T = "demo"
    dq = ["--quick", "--quiet", "--num-cpus", "1"]
    add("dem-01", T, "--videos folder missing", ["demo", "--videos", "vids", "--out", "D"] + dq,
        names=("vids", "--videos"), slow=True)
    add("dem-02", T, "--videos a folder with one video", ["demo", "--videos", "vids", "--out",
        "D"] + dq, videos("vids", 1), ("vids",), slow=True)
    add("dem-03", T, "--intrinsics random bytes", ["demo", "--videos", "vids", "--intrinsics",
        C, "--out", "D"] + dq, both(videos("vids", 2), raw(C)), (C, "--intrinsics"), slow=True)
    add("dem-04", T, "--epochs 0", ["demo", "--epochs", "0", "--out", "D"] + dq,
        names=("--epochs", "epochs"), slow=True)
    add("dem-05", T, "--out an existing file", ["demo", "--out", "notes.txt"] + dq,
        raw("notes.txt", "my notes\n"), ("notes.txt", "--out"), slow=True)
    return L


def _poses(d: Path, trc: bool = False) -> None:
    """A small poses file (npz of points3d/joint_names, or TRC) written with epiflow.export."""
    from epiflow import export as ex
    rng = np.random.default_rng(0)
    p = ex.Poses3D.from_joint_set(rng.normal(0, 0.3, (6, 17, 3)) + [0, 0, 1], "h36m17",
                                  fps=30.0)
    ex.write_poses(p, d / ("poses.trc" if trc else "poses.npz"), "trc" if trc else "npz")


# -- running a case -----------------------------------------------------------------------------
@dataclass
class Result:
    case: Case
    rc: int | None = None  # None: hang
    seconds: float = 0.0
    message: str = ""
    traceback: bool = False
    silent: bool = False
    damaged: bool = False
    names: bool | None = None
    wrote: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str = ""
    control_failed: bool = False
    warned: bool = False  # a Python warning (RuntimeWarning...) printed raw, not epiflow's own
    native_log: bool = False  # MediaPipe / TFLite's own C++ log lines on stderr

    @property
    def refused(self) -> bool:
        return self.rc not in (0, None)

    @property
    def failed(self) -> bool:
        return not self.skipped and (self.rc is None or self.traceback or self.silent
                                     or self.control_failed or self.warned
                                     or self.damaged or self.names is False
                                     or (self.refused and bool(self.wrote)))


def snapshot(root: Path) -> dict[str, str]:
    """{relative path: sha256 (files) or 'dir'} of everything under ``root``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [x for x in dirnames if x != "__pycache__"]
        rel = os.path.relpath(dirpath, root)
        if rel != ".":
            out[rel] = "dir"
        for f in filenames:
            p = Path(dirpath) / f
            try:
                out[os.path.relpath(p, root)] = hashlib.sha256(p.read_bytes()).hexdigest()
            except OSError as err:
                out[os.path.relpath(p, root)] = f"unreadable: {err}"
    return out


def _in_store(rel: str, before: dict[str, str]) -> bool:
    parts = Path(rel).parts
    return any(before.get(str(Path(*parts[:i]) / meta), "dir") != "dir"
               for i in range(1, len(parts)) for meta in ("zarr.json", ".zgroup"))


def _message(out: str, err: str) -> str:
    lines = [x.strip() for x in err.splitlines() if x.strip()]
    ours = [x for x in lines if x.startswith("epiflow ")]
    errors = [x for x in ours if re.match(r"epiflow [\w-]+: (error|internal error):", x)]
    if errors or ours:  # the refusal, not a warning printed before it
        return (errors or ours)[0]
    if "Traceback" in err and lines:
        exc = [x for x in lines if re.match(r"^[\w.]+(Error|Exception)\b", x)]
        return exc[-1] if exc else lines[-1]
    for x in lines:
        if re.search(r"error|refus|cannot|not |no |must", x, re.I) and "Warning" not in x:
            return x
    if lines:
        return lines[0]
    outl = [x.strip() for x in out.splitlines() if x.strip()]
    return outl[-1] if outl else ""


def run_case(case: Case, base: Base, work: Path, timeout: float) -> Result:
    res = Result(case)
    if case.needs_data and not (DATA / "README.md").is_file():
        res.skipped = f"no real data at {DATA}"
        return res
    d = work / case.id
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    abs_id = str(d / "abs_session")
    argv = [a.replace("@ABS@", abs_id) for a in case.argv]
    try:
        case.prep(d, base)
    except Exception as err:  # noqa: BLE001 - a broken case is reported, not fatal
        res.skipped = f"could not make the input: {type(err).__name__}: {err}"
        return res
    probe_before = _probe(case, d) if case.probe else None
    before = snapshot(d)
    t0 = time.time()
    proc = subprocess.Popen(epiflow_cmd() + argv, cwd=d, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env(),
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        res.rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        res.notes.append(f"killed after {timeout:.0f} s")
    res.seconds = time.time() - t0
    after = snapshot(d)
    text = out + "\n" + err
    res.traceback = "Traceback" in text
    res.warned = bool(RAW_WARNING.search(text))
    res.native_log = bool(NATIVE_LOG.search(err))
    res.message = _message(out, err) if res.rc != 0 else (
        "(exit 0) " + (out.strip().splitlines() or [""])[-1].strip())
    if case.expect == "refuse":
        res.silent = res.rc == 0
    if case.check is not None and res.rc is not None:
        fine, note = case.check(d, res.rc, text)
        if not fine and case.expect == "ok":
            res.control_failed = True
            res.notes.append("control failed: " + note)
        elif not fine:
            res.silent = True
            res.notes.append(note)
    changed = [p for p, h in before.items() if after.get(p) != h]
    res.damaged = bool(changed)
    if changed:
        res.notes.append("changed/removed: " + ", ".join(sorted(changed)[:4]))
    new = [p for p in after if p not in before]
    if res.refused:
        grown = [p for p in new if _in_store(p, before)]
        if grown:
            res.damaged = True
            res.notes.append("store grew on refusal: " + ", ".join(sorted(grown)[:3]))
        res.wrote = sorted(p for p in new if not any(p.startswith(q + os.sep) for q in new))
        res.wrote += sorted(changed)
        res.names = any(tok.replace("@ABS@", abs_id) in text for tok in case.names) \
            if case.names else None
    if case.probe and probe_before == 0:
        rc = _probe(case, d)
        if rc != 0:
            res.damaged = True
            res.notes.append(f"`epiflow {' '.join(case.probe)}` fails afterwards (exit {rc})")
    res.message = _short(res.message, d, base)
    return res


def _probe(case: Case, d: Path) -> int:
    p = subprocess.run(epiflow_cmd() + case.probe, cwd=d, capture_output=True, text=True,
                       env=child_env(), timeout=120)
    return p.returncode


def _short(text: str, d: Path, base: Base) -> str:
    for long, short in ((str(d), "<tmp>"), (str(base.root), "<base>"), (str(DATA), "<data>"),
                        (str(REPO), "<repo>")):
        text = text.replace(long, short)
    text = text.replace("|", "\\|")
    return text if len(text) <= 220 else text[:217] + "..."


# -- the table ----------------------------------------------------------------------------------
def _yn(v) -> str:
    return "-" if v is None else ("**yes**" if v else "no")


def _cmdline(case: Case) -> str:
    s = " ".join(a if a and " " not in a else json.dumps(a) for a in case.argv)
    s = s.replace(str(DATA), "$EPIFLOW_DATA").replace("@ABS@", "/abs/path")
    s = s.replace(" --num-cpus 1 --quiet", "").replace(" --quick --quiet --num-cpus 1", " --quick")
    return "`epiflow " + s.replace("|", "\\|") + "`"


def row(r: Result) -> str:
    c = r.case
    if r.skipped:
        return (f"| {c.id} | {c.what} | {_cmdline(c)} | skipped | - | {r.skipped} | - | - | - "
                f"| - | - | - |")
    ex = "hang" if r.rc is None else str(r.rc)
    names = "-" if not r.refused else ("**no**" if r.names is False else "yes")
    wrote = "-" if not r.refused else ("**" + ", ".join(r.wrote[:3]) + "**" if r.wrote
                                       else "no")
    msg = r.message + (f" *({'; '.join(n for n in r.notes if n)})*" if any(r.notes) else "")
    return (f"| {c.id} | {c.what} | {_cmdline(c)} | {ex} | {r.seconds:.0f} | {msg} | "
            f"{_yn(r.traceback)} | {_yn(r.warned)} | "
            f"{_yn(r.silent)} | {_yn(r.damaged)} | {names} | {wrote} |")


def totals(results: list[Result]) -> dict:
    ran = [r for r in results if not r.skipped]
    bad = [r for r in ran if r.case.expect != "ok"]
    refused = [r for r in ran if r.refused]
    return {
        "cases": len(results), "bad_inputs": len(bad), "controls": len(ran) - len(bad),
        "skipped": len(results) - len(ran), "clean": sum(not r.failed for r in ran),
        "failing": sum(r.failed for r in ran), "tracebacks": sum(r.traceback for r in ran),
        "silent": sum(r.silent for r in ran), "damaged": sum(r.damaged for r in ran),
        "no_name": sum(r.names is False for r in ran),
        "wrote_on_refusal": sum(bool(r.wrote) for r in refused),
        "refused_not_exit_2": sum(r.rc != 2 for r in refused),
        "hangs": sum(r.rc is None for r in ran), "raw_warnings": sum(r.warned for r in ran),
        "native_log": sum(r.native_log for r in ran),
    }


def totals_line(t: dict) -> str:
    return (f"{t['cases']} cases ({t['bad_inputs']} bad inputs, {t['controls']} controls, "
            f"{t['skipped']} skipped): {t['clean']} clean, {t['failing']} failing -- "
            f"tracebacks {t['tracebacks']}, silent {t['silent']}, damaged {t['damaged']}, "
            f"message without the name {t['no_name']}, wrote on refusal "
            f"{t['wrote_on_refusal']}, hangs {t['hangs']}, raw Python warnings "
            f"{t['raw_warnings']}; refusals not exit 2: {t['refused_not_exit_2']}")


def per_command(results: list[Result]) -> list[str]:
    lines = ["| command | cases | clean | traceback | silent | damaged | no name | wrote | "
             "raw warning | exit != 2 |", "|---|---|---|---|---|---|---|---|---|---|"]
    for cmd in dict.fromkeys(r.case.command for r in results):
        rs = [r for r in results if r.case.command == cmd and not r.skipped]
        t = totals(rs)
        lines.append(f"| {cmd} | {len(rs)} | {t['clean']} | {t['tracebacks']} | {t['silent']} | "
                     f"{t['damaged']} | {t['no_name']} | {t['wrote_on_refusal']} | "
                     f"{t['raw_warnings']} | {t['refused_not_exit_2']} |")
    return lines


def failing_list(results: list[Result]) -> list[str]:
    out = []
    for cmd in dict.fromkeys(r.case.command for r in results):
        rs = [r for r in results if r.case.command == cmd and r.failed]
        if rs:
            out.append(f"- **{cmd}**: " + "; ".join(
                f"{r.case.id} ({', '.join(_why(r))})" for r in rs))
    return out


def _why(r: Result) -> list[str]:
    w = []
    if r.rc is None:
        w.append("hang")
    if r.control_failed:
        w.append("control failed")
    if r.traceback:
        w.append("traceback")
    if r.warned:
        w.append("raw warning")
    if r.silent:
        w.append("silent")
    if r.damaged:
        w.append("damaged")
    if r.names is False:
        w.append("no name")
    if r.refused and r.wrote:
        w.append("wrote")
    return w


def native_note(results: list[Result]) -> str:
    """A sentence on the detector's own C++ log lines, which no flag of its Python API turns
    off: counted, not failed."""
    ids = [r.case.id for r in results if r.native_log]
    if not ids:
        return "No case printed MediaPipe's own C++ log lines."
    return (f"{len(ids)} case(s) ({', '.join(ids)}) printed MediaPipe's own C++ log lines on "
            f"stderr (\"INFO: Created TensorFlow Lite XNNPACK delegate\", \"W0000 ... "
            f"inference_feedback_manager\"); they come from its native logging, which its "
            f"Python API does not silence, and are not counted as failures.")


def document(results: list[Result], seconds: float, base: Base) -> str:
    t = totals(results)
    today = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    import epiflow
    head = f"""\
        # Bad inputs: what every command does with them

        Generated by `{REGENERATE}` on {today} (epiflow {epiflow.__version__}, {seconds:.0f} s
        with {JOBS} cases at a time). Regenerate it with that command from the repository root;
        what each column means, how the inputs are made and what counts as a failure is the
        docstring of [`benchmarks/bad_inputs.py`](../benchmarks/bad_inputs.py).

        Target (issues 13 and 14): no traceback, no raw Python warning, no silent wrong output, no
        damaged file or store, every refusal naming the file or argument, nothing written on
        refusal, exit code 2 for bad input.

        **Totals:** {totals_line(t)}.

        `s` is the command's wall time in seconds on a shared 2-core machine (a refusal that
        comes only after Ray or the detector started shows here). Rows ending in `-00` and rows
        whose input begins with "control" are controls: valid input the command must accept, so
        that a refusal in the rows below it is about the bad input. Paths in messages are
        shortened: `<tmp>` is the case's folder, `<base>` the folder of the base inputs,
        `$EPIFLOW_DATA` the real data.

        {native_note(results)}
        """
    lines = [textwrap.dedent(head), "## Per command", ""] + per_command(results)
    fl = failing_list(results)
    lines += ["", "## Failing cases", ""] + (fl or ["None."])
    if base.notes:
        lines += ["", "## Notes on the base inputs", ""] + [f"- {n}" for n in base.notes]
    lines += ["", "## The table", "",
              "| id | input (what is wrong) | command | exit | s | message (first line) | "
              "traceback | raw warning | silent | damaged | names it | wrote on refusal |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [row(r) for r in results]
    return "\n".join(lines) + "\n"


JOBS = 2


def main(argv: list[str] | None = None) -> int:
    global JOBS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="regex on case id or command: run only these; the doc is "
                                   "left alone unless --out is given")
    ap.add_argument("--out", help=f"the markdown table (default {DOC.relative_to(REPO)} when "
                                  f"every case runs)")
    ap.add_argument("--jobs", type=int, default=2, help="cases at a time (default 2)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per case (a hang)")
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temporary one)")
    ap.add_argument("--reuse-base", action="store_true",
                    help="with --keep: reuse the base inputs an earlier run left there")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    args = ap.parse_args(argv)
    JOBS = max(1, args.jobs)
    all_cases = cases()
    ids = [c.id for c in all_cases]
    if len(set(ids)) != len(ids):
        raise SystemExit(f"duplicate case ids: {sorted(i for i in ids if ids.count(i) > 1)}")
    chosen = [c for c in all_cases if not args.only or re.search(args.only, c.id)
              or re.search(args.only, c.command)]
    if args.list:
        for c in chosen:
            print(f"{c.id:8} {c.what}")
        print(f"{len(chosen)} cases")
        return 0
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="epiflow_bad_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    base = Base(work / "_base", args.timeout)
    if not (args.reuse_base and base.load()):
        shutil.rmtree(base.root, ignore_errors=True)
        base.root.mkdir(parents=True)
        print(f"making the base inputs in {base.root} ...", flush=True)
        base.build()
    print(f"base inputs made in {time.time() - t0:.0f} s; {len(chosen)} cases, {JOBS} at a time",
          flush=True)
    order = sorted(chosen, key=lambda c: not c.slow)
    done: dict[str, Result] = {}

    def one(c: Case) -> Result:
        r = run_case(c, base, work / "cases", args.timeout)
        tag = "skip" if r.skipped else ("FAIL " + ",".join(_why(r)) if r.failed else "ok")
        print(f"  {c.id:8} exit {r.rc!s:>4} {r.seconds:6.1f} s  {tag}", flush=True)
        return r

    with ThreadPoolExecutor(JOBS) as pool:
        for r in pool.map(one, order):
            done[r.case.id] = r
    results = [done[c.id] for c in chosen]
    seconds = time.time() - t0
    print()
    print("\n".join(per_command(results)))
    print()
    print("failing:\n" + ("\n".join(failing_list(results)) or "none"))
    print()
    print(f"TOTALS: {totals_line(totals(results))} ({seconds:.0f} s)")
    out = Path(args.out) if args.out else (DOC if not args.only else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(document(results, seconds, base))
        print(f"table: {out}")
    (work / "results.json").write_text(json.dumps(
        [{"id": r.case.id, "command": r.case.command, "rc": r.rc, "failed": r.failed,
          "why": _why(r), "message": r.message, "notes": r.notes, "skipped": r.skipped}
         for r in results], indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
