"""A 2D detector's errors, learned from real residuals, to corrupt synthetic 2D like a detector.

Two real sources (never the Pose2Sim demo, which is the monocular test):

- **Shelf**: OpenPose BODY_25 detections of actors 1–3 in 5 cameras (the candidate nearest to
  each ground-truth joint's projection, within 50 px:
  :func:`~epiflow.datasets.shelf.shelf_person_keypoints`)
  against the ground truth projected with the calibration;
- **caliscope**: MediaPipe's 2D in 4 webcams against caliscope's own triangulation of it
  projected back (a reference, not ground truth: these residuals are a lower bound).

Residuals are taken on the canonical ``h36m17`` joints, in units of the person's 2D size: the
RMS distance of the projected joints from the pelvis (the spread
:func:`~epiflow.models.data.normalize_keypoints` divides by), so they transfer to a person of any
apparent size. Per source and joint the model keeps (:func:`fit_residuals`):

- the core: the residuals within 3.5 robust sigmas of the median, kept as quantile tables per
  axis (and their mean, covariance and the correlation of the axes' normal scores);
  ``outlier_rate`` is the share beyond, kept as a pool to resample;
- ``rho``: the lag-1 autocorrelation of the core residual (a detector errs alike in consecutive
  frames);
- ``missing_rate``: the share of frames where the joint projects into the image but the
  detector gave nothing.

:meth:`DetectorErrorModel.corrupt` draws, per sequence, one source, then per joint an AR(1)
Gaussian sequence with ``rho`` (axes correlated), mapped through the core's quantiles (a Gaussian
copula: the core's shape and persistence are the source's), outliers resampled from the pool and
missing joints at those rates. The fitted model ships as ``epiflow/data/detector_error.json``
(:meth:`DetectorErrorModel.packaged`); :func:`fit_packaged_sources` refits it from
``EPIFLOW_DATA``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import ndtr, ndtri

from epiflow.skeleton import get_joint_set, map_to_h36m

__all__ = ["SourceResiduals", "DetectorErrorModel", "person_scale", "residuals_in_scale",
           "fit_residuals", "shelf_residuals", "caliscope_residuals", "fit_packaged_sources",
           "PACKAGED"]

PACKAGED = Path(__file__).resolve().parents[1] / "data" / "detector_error.json"
_CORE_SIGMAS = 3.5
_POOL = 400
_QUANTILES = 65


def person_scale(uv: np.ndarray, root: int = 0) -> np.ndarray:
    """(...,) the person's 2D size: RMS distance of the joints (..., J, 2) from the root, NaN
    where no joint or no root is seen."""
    rel = uv - uv[..., root:root + 1, :]
    sq = np.square(rel).sum(-1)
    with np.errstate(invalid="ignore"):
        n = np.isfinite(sq).sum(-1)
        out = np.sqrt(np.nansum(sq, -1) / np.maximum(n - 1, 1))
    return np.where(n > 1, out, np.nan)


def residuals_in_scale(detected: np.ndarray, projected: np.ndarray, size=None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Residuals of a detector against projected reference joints, in units of the person's size.

    Args:
        detected: (T, J, 3) h36m17 pixels and confidence (0 / NaN = missing).
        projected: (T, J, 2) h36m17 pixels of the reference.
        size: (w, h) of the image, or None: a joint counts as missing only inside it.

    Returns:
        (T, J, 2) residuals (NaN where either is missing) and (T, J) bool "missed": the
        reference is in the image but the detector gave nothing.
    """
    scale = person_scale(projected)[:, None, None]
    seen = (detected[..., 2] > 0) & np.isfinite(detected[..., :2]).all(-1)
    ref = np.isfinite(projected).all(-1)
    if size is not None:
        w, h = size
        with np.errstate(invalid="ignore"):
            ref &= ((projected[..., 0] >= 0) & (projected[..., 0] < w) & (projected[..., 1] >= 0)
                    & (projected[..., 1] < h))
    res = np.where((seen & ref)[..., None], (detected[..., :2] - projected) / scale, np.nan)
    return res, ref & ~seen & np.isfinite(scale[..., 0])


@dataclass(frozen=True)
class SourceResiduals:
    """One detector's fitted error statistics on the 17 canonical joints (module docstring).

    Attributes:
        name: the source. mean (J, 2), cov (J, 2, 2): the core, in units of the person's size.
        outlier_rate, rho, missing_rate: (J,). pool: (N, 2) outliers to resample, in units of
            their joint's robust sigma (so a joint's outliers are as far out as its own).
        n: (J,) residuals the joint's statistics come from.
        quantiles: (J, 2, Q) the core's quantiles per axis at ``linspace(0, 1, Q)`` (the core is
            drawn from them: its shape, not only its mean and covariance, is the source's).
        xy_corr: (J,) correlation of the core's normal scores between the two axes.
        sigma: (J, 2) robust sigma per axis (1.4826 × median absolute deviation).
        outlier_stay: (J,) probability that an outlier frame is followed by another (outliers
            come in runs, each run one displacement).
    """

    name: str
    mean: np.ndarray
    cov: np.ndarray
    outlier_rate: np.ndarray
    rho: np.ndarray
    missing_rate: np.ndarray
    pool: np.ndarray
    n: np.ndarray
    quantiles: np.ndarray
    xy_corr: np.ndarray
    sigma: np.ndarray
    outlier_stay: np.ndarray

    def to_dict(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "SourceResiduals":
        return cls(d["name"], *(np.asarray(d[k], np.float64) for k in
                                ("mean", "cov", "outlier_rate", "rho", "missing_rate", "pool",
                                 "n", "quantiles", "xy_corr", "sigma",
                                 "outlier_stay")))


def _robust_sigma(r: np.ndarray) -> np.ndarray:
    """(2,) 1.4826 × the median absolute deviation of residuals (N, 2) per axis."""
    return 1.4826 * np.median(np.abs(r - np.median(r, 0)), 0) + 1e-9


def _core_mask(r: np.ndarray) -> np.ndarray:
    """(N,) residuals (N, 2) within _CORE_SIGMAS robust sigmas of the median, per axis."""
    return (np.abs(r - np.median(r, 0)) / _robust_sigma(r) < _CORE_SIGMAS).all(-1)


def _lag1(per_seq: list[np.ndarray], core: np.ndarray) -> tuple[float, float]:
    """Persistence of one joint's errors over consecutive frames of each sequence: the lag-1
    autocorrelation of the normal scores of its residuals (the copula's AR coefficient), and the
    probability that an outlier frame is followed by another.

    Args:
        per_seq: per sequence (T, 2) residuals, NaN = missing. core: the core mask of their
            finite residuals, concatenated in order.
    """
    flat = np.concatenate(per_seq)
    ok = np.isfinite(flat).all(-1)
    scores = np.full(flat.shape, np.nan)
    scores[ok] = _normal_scores(flat[ok])
    outlier = np.zeros(len(flat), bool)
    outlier[np.flatnonzero(ok)[~core]] = True
    starts = np.cumsum([0] + [len(r) for r in per_seq])
    a, b, stay = [], [], []
    for lo, hi in zip(starts[:-1], starts[1:]):
        x, o = scores[lo:hi], outlier[lo:hi]
        pair = np.isfinite(x[1:]).all(-1) & np.isfinite(x[:-1]).all(-1)
        a.append(x[1:][pair]), b.append(x[:-1][pair])
        stay.append(o[1:][pair & o[:-1]])
    a, b, stay = np.concatenate(a), np.concatenate(b), np.concatenate(stay)
    rho = float(np.clip((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()), 0, 0.99)) \
        if len(a) >= 10 else 0.0
    return rho, float(stay.mean()) if len(stay) else 0.0


def fit_residuals(name: str, sequences: list[tuple[np.ndarray, np.ndarray]],
                  seed: int = 0) -> SourceResiduals:
    """Fit the statistics of one source from its residual sequences.

    Args:
        sequences: per sequence (one camera and person), ``(residuals (T, J, 2), missed (T, J))``
            from :func:`residuals_in_scale`.
    """
    J = sequences[0][0].shape[1]
    mean, cov = np.zeros((J, 2)), np.zeros((J, 2, 2))
    outlier, rho, missing, n = np.zeros(J), np.zeros(J), np.zeros(J), np.zeros(J)
    quantiles, xy_corr, sigma = np.zeros((J, 2, _QUANTILES)), np.zeros(J), np.ones((J, 2))
    stay = np.zeros(J)
    pool = []
    for j in range(J):
        per_seq = [r[:, j] for r, _ in sequences]
        flat = np.concatenate(per_seq)
        ok = np.isfinite(flat).all(-1)
        r = flat[ok]
        n[j] = len(r)
        missed = sum(int(m[:, j].sum()) for _, m in sequences)
        missing[j] = missed / max(missed + len(r), 1)
        if len(r) < 10:
            cov[j] = np.eye(2) * 1e-4
            continue
        core = _core_mask(r)
        mean[j] = r[core].mean(0)
        cov[j] = np.cov(r[core].T) + np.eye(2) * 1e-8
        outlier[j] = 1 - core.mean()
        quantiles[j] = np.quantile(r[core], np.linspace(0, 1, _QUANTILES), axis=0).T
        xy_corr[j] = np.corrcoef(_normal_scores(r[core]).T)[0, 1]
        sigma[j] = _robust_sigma(r)
        pool.append((r[~core] - np.median(r, 0)) / sigma[j])
        rho[j], stay[j] = _lag1(per_seq, core)
    pool = np.concatenate(pool) if pool else np.zeros((0, 2))
    if len(pool) > _POOL:
        pool = pool[np.random.default_rng(seed).choice(len(pool), _POOL, replace=False)]
    return SourceResiduals(name, mean, cov, outlier, rho, missing, pool, n, quantiles, xy_corr,
                           sigma, stay)


def _normal_scores(r: np.ndarray) -> np.ndarray:
    """(N, 2) standard normal scores of each column's ranks."""
    ranks = np.argsort(np.argsort(r, 0), 0)
    return ndtri((ranks + 0.5) / len(r))


def _from_quantiles(u: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Values (T, J, 2) at probabilities ``u`` of per joint and axis quantile tables (J, 2, Q)."""
    grid = np.linspace(0, 1, quantiles.shape[-1])
    out = np.empty_like(u)
    for j in range(u.shape[1]):
        for a in range(2):
            out[:, j, a] = np.interp(u[:, j, a], grid, quantiles[j, a])
    return out


def _outlier_runs(s: SourceResiduals, T: int, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(T, J) outlier frames, a two-state Markov chain per joint with the source's rate and
    ``outlier_stay``, and (T, J, 2) their residuals: one pool draw per run, about the median."""
    J = len(s.mean)
    p, q = s.outlier_rate, np.clip(s.outlier_stay, 0, 0.98)
    enter = np.clip(p * (1 - q) / np.maximum(1 - p, 1e-9), 0, 1)         # keeps the rate p
    out = np.zeros((T, J), bool)
    out[0] = rng.random(J) < p
    for t in range(1, T):
        out[t] = np.where(out[t - 1], rng.random(J) < q, rng.random(J) < enter)
    draw = s.pool[rng.integers(len(s.pool), size=(T, J))]
    new_run = out & ~np.vstack([np.zeros((1, J), bool), out[:-1]])
    run_id = np.maximum.accumulate(np.where(new_run, np.arange(T)[:, None], 0), axis=0)
    draw = draw[run_id, np.arange(J)]                                   # one draw per run
    centre = s.quantiles[:, :, s.quantiles.shape[-1] // 2]
    return out, centre + draw * s.sigma


class DetectorErrorModel:
    """A mixture of detectors' fitted errors (:class:`SourceResiduals`) on ``h36m17``."""

    joint_set = "h36m17"

    def __init__(self, sources: list[SourceResiduals]):
        if not sources:
            raise ValueError("DetectorErrorModel needs at least one source")
        self.sources = list(sources)

    @classmethod
    def packaged(cls) -> "DetectorErrorModel":
        """The model fitted on Shelf and caliscope that ships with epiflow."""
        return cls.load(PACKAGED)

    @classmethod
    def load(cls, path) -> "DetectorErrorModel":
        data = json.loads(Path(path).read_text())
        return cls([SourceResiduals.from_dict(d) for d in data["sources"]])

    def save(self, path, note: str = "") -> None:
        Path(path).write_text(json.dumps({"note": note, "joint_set": self.joint_set,
                                          "sources": [s.to_dict() for s in self.sources]}))

    def sample_residuals(self, T: int, rng: np.random.Generator, source: int | None = None
                         ) -> tuple[np.ndarray, np.ndarray]:
        """(T, 17, 2) residuals in person-size units and (T, 17) bool dropped, for one sequence of
        ``T`` frames from one source (drawn at random when None)."""
        s = self.sources[rng.integers(len(self.sources)) if source is None else source]
        J = len(s.mean)
        c = np.clip(s.xy_corr, -0.99, 0.99)
        L = np.zeros((J, 2, 2))
        L[:, 0, 0], L[:, 1, 0], L[:, 1, 1] = 1.0, c, np.sqrt(1 - c ** 2)
        z = np.empty((T, J, 2))
        z[0] = np.einsum("jab,jb->ja", L, rng.normal(size=(J, 2)))
        rho = s.rho[:, None]
        for t in range(1, T):
            z[t] = rho * z[t - 1] + np.sqrt(1 - rho ** 2) * np.einsum(
                "jab,jb->ja", L, rng.normal(size=(J, 2)))
        res = _from_quantiles(ndtr(z), s.quantiles)                         # (T, J, 2)
        if len(s.pool):
            out, value = _outlier_runs(s, T, rng)
            res = np.where(out[..., None], value, res)
        return res, rng.random((T, J)) < s.missing_rate

    def corrupt(self, uv: np.ndarray, joint_set: str, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
        """Corrupt exact 2D like a detector.

        Args:
            uv: (T, J, 2) exact pixels of ``joint_set`` (``h36m17``; its root first).

        Returns:
            (T, J, 2) corrupted pixels and (T, J) bool joints the detector missed.
        """
        if joint_set != self.joint_set:
            raise ValueError(f"the detector error model is fitted on {self.joint_set!r}; "
                             f"got keypoints of {joint_set!r}")
        res, dropped = self.sample_residuals(len(uv), rng)
        scale = person_scale(uv, get_joint_set(joint_set).parents.index(-1))
        return uv + res * scale[:, None, None], dropped


# -- the real sources -----------------------------------------------------------------------------
def shelf_residuals(root) -> list[tuple[np.ndarray, np.ndarray]]:
    """Residual sequences of Shelf's OpenPose detections against its ground truth projected:
    actors 1–3 (ids 0–2), each camera one sequence (:func:`residuals_in_scale`)."""
    from epiflow.datasets.shelf import gt_track, load_shelf_calibration, read_shelf_gt, \
        shelf_person_keypoints
    root = Path(root)
    rig = load_shelf_calibration(root / "calibration.json")
    gt = read_shelf_gt(root / "gt.txt")
    out = []
    for pid in (0, 1, 2):
        det = map_to_h36m(shelf_person_keypoints(root, pid).data, "body25", confidence=True)
        ref = map_to_h36m(gt_track(gt, pid)[:, :14], "shelf14", confidence=False)
        proj = rig.project(ref)                                             # (C, T, 17, 2)
        for c, cam in enumerate(rig):
            out.append(residuals_in_scale(det[:, c], proj[c], cam.size))
    return out


def caliscope_residuals(folder) -> list[tuple[np.ndarray, np.ndarray]]:
    """Residual sequences of caliscope's MediaPipe 2D against its own triangulation projected
    with its calibration (the unturned images), each camera one sequence."""
    from epiflow.calibration.formats_caliscope import load_caliscope
    from epiflow.datasets.caliscope import read_caliscope_xy, read_caliscope_xyz
    folder = Path(folder)
    rig = load_caliscope(folder / "config.toml")
    rec = folder / "recordings" / "recording_1" / "HOLISTIC"
    kp = read_caliscope_xy(rec / "xy_HOLISTIC.csv")
    X = read_caliscope_xyz(rec / "xyz_HOLISTIC.csv", n_frames=kp.n_frames)
    det = map_to_h36m(kp.data, "blazepose33", confidence=True)
    proj = rig.project(map_to_h36m(X, "blazepose33", confidence=False))
    return [residuals_in_scale(det[:, c], proj[c], rig[c].size) for c in range(len(rig))]


def fit_packaged_sources(data_dir) -> DetectorErrorModel:
    """Fit the model from Shelf and caliscope in ``data_dir`` (``EPIFLOW_DATA``)."""
    data_dir = Path(data_dir)
    return DetectorErrorModel([fit_residuals("shelf_openpose", shelf_residuals(data_dir / "shelf")),
                               fit_residuals("caliscope_mediapipe",
                                             caliscope_residuals(data_dir / "caliscope_4cam"))])
