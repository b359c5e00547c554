"""Bundle adjustment: all cameras and all 3D points refined together on reprojection error.

The default solver (``solver="lm"``) is Levenberg–Marquardt on the normal equations reduced to
the cameras by the Schur complement over the points: each residual depends on one camera and one
point, so the points' blocks are 3 × 3 and invert in closed form, leaving a system of
C × (parameters per camera) unknowns. The Jacobian is analytic. Observations are kept sorted by
camera, so every product with a camera's matrix is one BLAS call (on the Pose2Sim demo's 7,900
observations an iteration takes about 7 ms).

The robust loss is minimised by iteratively reweighted least squares: every accepted step
recomputes the per-observation weights from the loss at the current errors (see
:func:`_levenberg_marquardt` for the graduated scale). IRLS converges linearly near the end: on
the Pose2Sim demo the last round takes 23 iterations to bring the cost's relative decrease per
step from 5e-4 down to the 1e-6 tolerance.

``solver="scipy"`` runs the same reweighting with ``scipy.optimize.least_squares`` (trust-region
reflective, ``x_scale="jac"``, LSMR on the sparse normal equations), with the analytic Jacobian
or finite differences over the sparsity pattern (``jacobian="numeric"``, kept as the check of the
analytic one). It is slower. Passing a robust loss to ``least_squares`` itself was measured to
crawl here: 1,000 evaluations without converging on the Pose2Sim demo.

Per camera the parameters are the world→camera rotation (Rodrigues vector) and translation and,
when asked, intrinsics: a focal length shared by x and y, keeping their ratio (``"focal"``), the
principal point (``"principal_point"``) and the first radial distortion coefficient (``"k1"``).
Camera 0's pose is held fixed (the gauge: the world frame is camera 0's until
:mod:`epiflow.calibration.world_frame` moves it); the overall scale stays free.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares
from scipy.sparse import coo_matrix, csr_matrix
from scipy.spatial.transform import Rotation

from epiflow.calibration.camera import CameraRig

__all__ = ["BundleResult", "bundle_adjust", "robust_weights", "INTRINSIC_PARAMETERS",
           "PoseCovariance", "pose_covariance", "linearized_refits"]

#: Intrinsic parameters bundle adjustment can refine, with how many numbers each takes.
#: ``shared_focal``: one focal length for every camera (cameras of one model at one zoom),
#: started at the geometric mean of theirs; each camera keeps its fx / fy ratio.
INTRINSIC_PARAMETERS = {"focal": 1, "principal_point": 2, "k1": 1, "shared_focal": 1}


@dataclass(frozen=True, eq=False)
class BundleResult:
    """What bundle adjustment returns.

    Attributes:
        rig: the refined cameras (same names, sizes and order as the input rig).
        points: (N, 3) refined points, world frame (camera 0's frame unless moved); NaN for
            points left out (fewer than two usable observations).
        errors_px: (C, N) reprojection error of each used observation, pixels; NaN elsewhere.
        n_evaluations: function evaluations used. success: whether the reweighting converged.
    """

    rig: CameraRig
    points: np.ndarray
    errors_px: np.ndarray
    n_evaluations: int
    success: bool


def _skew(v: np.ndarray) -> np.ndarray:
    """(..., 3, 3) cross-product matrices of (..., 3) vectors."""
    S = np.zeros(v.shape[:-1] + (3, 3))
    S[..., 0, 1], S[..., 0, 2], S[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    return S - np.swapaxes(S, -1, -2)


def _rotation_and_jacobian(rvec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(C, 3, 3) rotations of (C, 3) Rodrigues vectors and their left Jacobians J_l, so that
    ``R(ω + δ) X ≈ R(ω) X - [R(ω) X]× J_l(ω) δ``."""
    theta = np.linalg.norm(rvec, axis=-1)[:, None, None]
    W = _skew(rvec)
    W2 = W @ W
    small = theta < 1e-8
    th = np.where(small, 1.0, theta)
    a = np.where(small, 1.0, np.sin(th) / th)
    b = np.where(small, 0.5, (1 - np.cos(th)) / th ** 2)
    c = np.where(small, 1.0 / 6, (th - np.sin(th)) / th ** 3)
    eye = np.eye(3)
    return eye + a * W + b * W2, eye + b * W + c * W2


class _Layout:
    """How the flat parameter vector maps onto cameras and points."""

    def __init__(self, rig: CameraRig, n_points: int, refine: tuple[str, ...], fix_first: bool):
        unknown = [r for r in refine if r not in INTRINSIC_PARAMETERS]
        if unknown:
            raise ValueError(f"refine: unknown intrinsic parameter(s) {unknown}; expected some "
                             f"of {list(INTRINSIC_PARAMETERS)}")
        self.rig, self.refine = rig, tuple(refine)
        self.fixed = np.zeros(len(rig), bool)
        self.fixed[0] = fix_first
        self.per_cam = 6 + sum(INTRINSIC_PARAMETERS[r] for r in self.refine)
        self.cam_size = len(rig) * self.per_cam
        self.size = self.cam_size + 3 * n_points
        self.aspect = np.sqrt(rig.K[:, 1, 1] / rig.K[:, 0, 0])  # fy = f·a, fx = f / a
        self.rvec0 = np.stack([c.rvec for c in rig])  # (C, 3), the start (kept where fixed)

    def pack(self, points: np.ndarray) -> np.ndarray:
        cams = []
        shared = np.exp(np.mean(np.log(np.sqrt(self.rig.K[:, 0, 0] * self.rig.K[:, 1, 1]))))
        for cam in self.rig:
            intr = {"focal": [np.sqrt(cam.K[0, 0] * cam.K[1, 1])], "shared_focal": [shared],
                    "principal_point": [cam.K[0, 2], cam.K[1, 2]], "k1": [cam.dist[0]]}
            cams.append(np.concatenate([cam.rvec, cam.t, *[intr[r] for r in self.refine]]))
        return np.concatenate([np.concatenate(cams), points.ravel()])

    def unpack(self, x: np.ndarray):
        """(rvec (C, 3), t (C, 3), K (C, 3, 3), dist (C, 5), points (N, 3))."""
        cam = x[:self.cam_size].reshape(len(self.rig), self.per_cam)
        base = self.rig
        rvec = np.where(self.fixed[:, None], self.rvec0, cam[:, :3])
        t = np.where(self.fixed[:, None], base.t, cam[:, 3:6])
        K, dist = base.K.copy(), base.dist.copy()
        col = 6
        for r in self.refine:
            if r in ("focal", "shared_focal"):
                K[:, 0, 0], K[:, 1, 1] = cam[:, col] / self.aspect, cam[:, col] * self.aspect
            elif r == "principal_point":
                K[:, 0, 2], K[:, 1, 2] = cam[:, col], cam[:, col + 1]
            else:
                dist[:, 0] = cam[:, col]
            col += INTRINSIC_PARAMETERS[r]
        return rvec, t, K, dist, x[self.cam_size:].reshape(-1, 3)

    def shared_column(self) -> int | None:
        """The per-camera column of ``shared_focal`` (its step is one for all cameras), or None."""
        if "shared_focal" not in self.refine:
            return None
        col = 6
        for r in self.refine[:self.refine.index("shared_focal")]:
            col += INTRINSIC_PARAMETERS[r]
        return col

    def columns(self, cam_idx: np.ndarray, pt_idx: np.ndarray) -> np.ndarray:
        """(M, per_cam + 3) parameter columns each observation's residuals depend on."""
        cam_cols = cam_idx[:, None] * self.per_cam + np.arange(self.per_cam)
        pt_cols = self.cam_size + 3 * pt_idx[:, None] + np.arange(3)
        return np.concatenate([cam_cols, pt_cols], 1)

    def sparsity(self, cam_idx: np.ndarray, pt_idx: np.ndarray) -> csr_matrix:
        """(2M, size) 0/1 pattern of the Jacobian (for finite differences)."""
        cols = self.columns(cam_idx, pt_idx)
        rows = np.repeat(np.arange(2 * len(cam_idx)).reshape(-1, 2, 1), cols.shape[1], 2)
        cols = np.broadcast_to(cols[:, None], rows.shape)
        return coo_matrix((np.ones(rows.size), (rows.ravel(), cols.ravel())),
                          shape=(rows.shape[0] * 2, self.size)).tocsr()


def _distortion_terms(x: np.ndarray, y: np.ndarray, dist: np.ndarray):
    """Distorted (xd, yd), r², and the (M, 2, 2) Jacobian d(xd, yd)/d(x, y).

    A numpy copy of :func:`epiflow.calibration.projection.distort` and
    :func:`~epiflow.calibration.projection.distort_jacobian` (the one distortion model), kept
    because the solver's inner loop runs on numpy; ``tests/calibration/test_distortion.py``
    holds the two to 1e-12.
    """
    k1, k2, p1, p2, k3 = dist.T
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    dradial = k1 + r2 * (2 * k2 + 3 * k3 * r2)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    j00 = radial + 2 * x * x * dradial + 2 * p1 * y + 6 * p2 * x
    j01 = 2 * x * y * dradial + 2 * p1 * x + 2 * p2 * y
    j11 = radial + 2 * y * y * dradial + 6 * p1 * y + 2 * p2 * x
    J = np.stack([np.stack([j00, j01], -1), np.stack([j01, j11], -1)], -2)
    return xd, yd, r2, J


class _Problem:
    """Residuals and their analytic Jacobian for one set of observations."""

    def __init__(self, layout: _Layout, cam_idx, pt_idx, obs):
        order = np.argsort(cam_idx, kind="stable")  # the observations camera by camera
        self.layout, self.cam_idx, self.pt_idx = layout, cam_idx[order], pt_idx[order]
        self.obs, self.order = obs[order], order
        C = len(layout.rig)
        edges = np.searchsorted(self.cam_idx, np.arange(C + 1))
        #: each camera's rows, contiguous: a product with a camera's matrix is one BLAS call, not
        #: M small ones (the Jacobian blocks of the Pose2Sim demo's 7,900 observations in 1.5 ms
        #: instead of 4.0 ms)
        self.slices = [slice(edges[k], edges[k + 1]) for k in range(C)]
        self.cols = layout.columns(self.cam_idx, self.pt_idx)
        self.by_camera = _grouping(self.cam_idx, C)
        self.by_point = _grouping(self.pt_idx, (layout.size - layout.cam_size) // 3)

    def _per_camera(self, a: np.ndarray, mats: np.ndarray) -> np.ndarray:
        """(M, ..., 3) rows times each row's camera's matrix from the right: ``a[m] @ mats[c_m]``
        for mats (C, 3, k), one matrix product per camera."""
        out = np.empty(a.shape[:-1] + mats.shape[-1:])
        for k, rows in enumerate(self.slices):  # (rows · ..., 3) @ (3, k): one BLAS product
            out[rows] = (a[rows].reshape(-1, 3) @ mats[k]).reshape(out[rows].shape)
        return out

    def _geometry(self, x):
        rvec, t, K, dist, X = self.layout.unpack(x)
        R, Jl = _rotation_and_jacobian(rvec)
        c, p = self.cam_idx, self.pt_idx
        RX = self._per_camera(X[p], np.swapaxes(R, 1, 2))
        Pc = RX + t[c]
        z = np.maximum(Pc[:, 2], 1e-6)
        xn, yn = Pc[:, 0] / z, Pc[:, 1] / z
        xd, yd, r2, Jd = _distortion_terms(xn, yn, dist[c])
        Kc = K[c]
        uv = np.stack([Kc[:, 0, 0] * xd + Kc[:, 0, 1] * yd + Kc[:, 0, 2],
                       Kc[:, 1, 1] * yd + Kc[:, 1, 2]], -1)
        return locals()

    def errors(self, x) -> np.ndarray:
        """(M, 2) projection minus observation, pixels (rows in :attr:`cam_idx` order)."""
        return self._geometry(x)["uv"] - self.obs

    def blocks(self, x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Errors (M, 2) and their Jacobian blocks: camera (M, 2, per_cam), point (M, 2, 3)."""
        g = self._geometry(x)
        Kc, Jd, xn, yn = g["Kc"], g["Jd"], g["xn"], g["yn"]
        # A = K[:2, :2] · Jd: pixels per distorted normalised unit
        a00 = Kc[:, 0, 0] * Jd[:, 0, 0] + Kc[:, 0, 1] * Jd[:, 1, 0]
        a01 = Kc[:, 0, 0] * Jd[:, 0, 1] + Kc[:, 0, 1] * Jd[:, 1, 1]
        a10, a11 = Kc[:, 1, 1] * Jd[:, 1, 0], Kc[:, 1, 1] * Jd[:, 1, 1]
        # D = A · d(xn, yn)/d(camera-frame point) = d(u, v) / d(camera-frame point)
        D = np.stack([np.stack([a00, a01, -(a00 * xn + a01 * yn)], -1),
                      np.stack([a10, a11, -(a10 * xn + a11 * yn)], -1)], 1) / g["z"][:, None, None]
        # D · [RX]× has rows d × RX
        d_rot = -self._per_camera(np.cross(D, g["RX"][:, None, :]), g["Jl"])
        d_t = D.copy()
        fixed = self.layout.fixed[self.cam_idx]
        d_rot[fixed], d_t[fixed] = 0, 0
        Jc = np.concatenate([d_rot, d_t] + self._intrinsic_blocks(g), 2)
        return g["uv"] - self.obs, Jc, self._per_camera(D, g["R"])

    def jacobian(self, x, sw: np.ndarray) -> csr_matrix:
        """(2M, size) sparse Jacobian of ``sw · errors`` (sw: (M,) weights)."""
        _, Jc, Jp = self.blocks(x)
        J = np.concatenate([Jc, Jp], 2) * sw[:, None, None]  # (M, 2, per_cam + 3)
        rows = np.repeat(np.arange(2 * len(J)).reshape(-1, 2, 1), J.shape[2], 2)
        cols = np.broadcast_to(self.cols[:, None], J.shape)
        return coo_matrix((J.ravel(), (rows.ravel(), cols.ravel())),
                          shape=(2 * len(J), self.layout.size)).tocsr()

    def _intrinsic_blocks(self, g) -> list[np.ndarray]:
        aspect = self.layout.aspect[self.cam_idx]
        M = len(self.cam_idx)
        out = []
        for r in self.layout.refine:
            if r in ("focal", "shared_focal"):
                out.append(np.stack([g["xd"] / aspect, g["yd"] * aspect], -1)[:, :, None])
            elif r == "principal_point":
                out.append(np.broadcast_to(np.eye(2), (M, 2, 2)).copy())
            else:
                dk = np.stack([g["xn"] * g["r2"], g["yn"] * g["r2"]], -1)
                out.append(np.einsum("mij,mj->mi", g["Kc"][:, :2, :2], dk)[:, :, None])
        return out


def robust_weights(errors: np.ndarray, loss: str, scale: float) -> np.ndarray:
    """Iteratively-reweighted-least-squares weights of a robust loss.

    Args:
        errors: (...) reprojection errors, pixels (norms of 2D residuals).
        loss: ``"huber"``, ``"cauchy"``, ``"soft_l1"`` or ``"linear"`` (weight 1).
        scale: where the loss turns from quadratic to robust, pixels.

    Returns:
        (...) weights in (0, 1]: ``weight · e²`` has the loss's gradient at e.
    """
    r = np.abs(errors) / scale
    if loss == "huber":
        return np.where(r <= 1, 1.0, 1.0 / np.maximum(r, 1e-12))
    if loss == "cauchy":
        return 1.0 / (1.0 + r * r)
    if loss == "soft_l1":
        return 1.0 / np.sqrt(1.0 + r * r)
    if loss == "linear":
        return np.ones_like(r)
    raise ValueError(f"loss must be one of huber, cauchy, soft_l1, linear; got {loss!r}")


def robust_cost(errors: np.ndarray, loss: str, scale: float) -> np.ndarray:
    """The robust loss ρ(e) whose IRLS weights :func:`robust_weights` gives (ρ'(e) = w · e).

    Args:
        errors: (...) reprojection errors, pixels. loss, scale: as in :func:`robust_weights`.

    Returns:
        (...) ρ(e), pixels² (``e² / 2`` for the linear loss).
    """
    r2 = (np.asarray(errors) / scale) ** 2
    if loss == "huber":
        r = np.sqrt(r2)
        return scale ** 2 * np.where(r <= 1, r2 / 2, r - 0.5)
    if loss == "cauchy":
        return scale ** 2 / 2 * np.log1p(r2)
    if loss == "soft_l1":
        return scale ** 2 * (np.sqrt(1 + r2) - 1)
    if loss == "linear":
        return scale ** 2 * r2 / 2
    raise ValueError(f"loss must be one of huber, cauchy, soft_l1, linear; got {loss!r}")


def _grouping(index: np.ndarray, n: int) -> csr_matrix:
    """(n, M) 0/1 matrix that sums rows of an (M, ...) array by ``index`` (M,) when applied."""
    return csr_matrix((np.ones(len(index)), (index, np.arange(len(index)))), shape=(n, len(index)))


def _sum_by(group: csr_matrix, values: np.ndarray) -> np.ndarray:
    """(n, ...) sums of ``values`` (M, ...) grouped by a :func:`_grouping` matrix."""
    return (group @ values.reshape(len(values), -1)).reshape((group.shape[0],) + values.shape[1:])


class _Schur:
    """Normal equations of one weighted Gauss-Newton step, reduced to the cameras."""

    def __init__(self, problem: _Problem, n_points: int, e, Jc, Jp, w):
        c, p = problem.cam_idx, problem.pt_idx
        C, P = len(problem.layout.rig), problem.layout.per_cam
        wJc, wJp = Jc * w[:, None, None], Jp * w[:, None, None]
        T = np.swapaxes
        self.U = np.stack([Jc[rows].reshape(-1, P).T @ wJc[rows].reshape(-1, P)
                           for rows in problem.slices])  # (C, P, P), one product per camera
        self.V = _sum_by(problem.by_point, T(Jp, 1, 2) @ wJp)  # (N, 3, 3)
        self.gc = _sum_by(problem.by_camera, np.einsum("mki,mk->mi", wJc, e))  # (C, P)
        self.gp = _sum_by(problem.by_point, np.einsum("mki,mk->mi", wJp, e))  # (N, 3)
        # W_pᵀ (3, C·P) per point: the layout the step's products want (contiguous, BLAS)
        self.Wt = np.zeros((n_points, 3, C, P))
        self.Wt[p, :, c] = T(Jp, 1, 2) @ wJc
        self.fixed = np.zeros((C, P), bool)
        self.fixed[:, :6] = problem.layout.fixed[:, None]
        self.C, self.P = C, P
        self.tied = problem.layout.shared_column()

    def reduced(self, lam: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The Marquardt-damped system reduced to the cameras: (S (n, n), b (n,), V⁻¹ (N, 3, 3),
        Wᵀ (N, 3, n)), n = C × P, fixed parameters not yet removed."""
        eye3, eyeP = np.eye(3), np.eye(self.P)
        Vinv = _inverse3(self.V + lam * (self.V * eye3) + 1e-9 * eye3)
        N, n = len(Vinv), self.C * self.P
        Wt = self.Wt.reshape(N, 3, n)
        Yt = (Vinv @ Wt).reshape(3 * N, n)  # (V⁻¹ Wᵀ) per point, stacked
        S = np.zeros((self.C, self.P, self.C, self.P))
        S[np.arange(self.C), :, np.arange(self.C)] = self.U + lam * (self.U * eyeP) + 1e-9 * eyeP
        S = S.reshape(n, n) - Yt.T @ Wt.reshape(3 * N, n)  # U - Σ_p W_p V_p⁻¹ W_pᵀ
        b = -self.gc.ravel() + Yt.T @ self.gp.ravel()
        return S, b, Vinv, Wt

    def step(self, lam: float) -> tuple[np.ndarray, np.ndarray]:
        """(camera step (C, P), point step (N, 3)) of the Marquardt-damped system."""
        S, b, Vinv, Wt = self.reduced(lam)
        N, n = len(Vinv), self.C * self.P
        f = self.fixed.ravel()
        S[f], S[:, f], b[f] = 0, 0, 0
        S[f, f] = 1
        dc = _solve_tied(S + 1e-12 * np.trace(S) / n * np.eye(n), b, self.tied, self.C, self.P)
        dp = np.einsum("nij,nj->ni", Vinv, -self.gp - (Wt.reshape(3 * N, n) @ dc).reshape(N, 3))
        return dc.reshape(self.C, self.P), dp


def _solve_tied(S: np.ndarray, b: np.ndarray, tied: int | None, C: int, P: int) -> np.ndarray:
    """(n,) solution of ``S d = b`` with, when ``tied`` is a column of the per-camera
    parameters, that parameter's step equal in every camera (``d = M d'``, ``Mᵀ S M d' = Mᵀ b``,
    M summing the C tied columns into one)."""
    if tied is None:
        return np.linalg.solve(S, b)
    n = C * P
    cols = np.arange(C) * P + tied
    others = np.setdiff1d(np.arange(n), cols)
    M = np.zeros((n, len(others) + 1))
    M[others, np.arange(len(others))] = 1
    M[cols, -1] = 1
    return M @ np.linalg.solve(M.T @ S @ M, M.T @ b)


def _inverse3(A: np.ndarray) -> np.ndarray:
    """(N, 3, 3) inverses of (N, 3, 3) matrices (adjugate over determinant; fast for many)."""
    c0 = np.cross(A[:, 1], A[:, 2])
    c1 = np.cross(A[:, 2], A[:, 0])
    c2 = np.cross(A[:, 0], A[:, 1])
    det = np.einsum("ni,ni->n", A[:, 0], c0)
    scale = np.abs(A).reshape(len(A), -1).max(1) ** 3
    ok = np.abs(det) > 1e-12 * scale  # a point no view fixes (all its weights 0, one view)
    out = np.zeros_like(A)
    out[ok] = np.stack([c0[ok], c1[ok], c2[ok]], 2) / det[ok, None, None]
    if not ok.all():  # the pseudo-inverse: no step along the directions nothing fixes
        out[~ok] = np.linalg.pinv(np.nan_to_num(A[~ok]), rcond=1e-10)
    return out


def _levenberg_marquardt(problem: _Problem, x: np.ndarray, conf: np.ndarray, loss: str,
                         scale: float, max_iterations: int, tolerance: float):
    """Robust Levenberg–Marquardt with the Schur complement on the points. Returns
    (x, evaluations, converged).

    The loss's weights are recomputed at every accepted step, and its scale is graduated: each
    step uses ``max(scale, 2 × the median error)``, so a start far from the answer (focal
    lengths 20 % off: errors of a hundred pixels) is not taken for a sea of outliers; the scale
    falls towards ``scale`` as the fit closes in. The iterations stop once the cost falls by
    less than ``tolerance`` (relative) with a settled scale: at ``scale``, or within 1 % of the
    previous step's (real detections whose median error stays above ``scale / 2``).
    """
    n_points = (len(x) - problem.layout.cam_size) // 3
    lam, evaluations, s_previous = 1, 0, np.inf
    e, Jc, Jp = problem.blocks(x)

    def cost_of(err, s):
        return float(np.sum(conf * robust_cost(np.linalg.norm(err, axis=1), loss, s)))
    for _ in range(max_iterations):
        norms = np.linalg.norm(e, axis=1)
        s = max(scale, 2.0 * float(np.median(norms)))
        settled = s == scale or abs(s - s_previous) <= 0.01 * s
        s_previous = s
        cost = cost_of(e, s)
        system = _Schur(problem, n_points, e, Jc, Jp, conf * robust_weights(norms, loss, s))
        for _ in range(10):
            dc, dp = system.step(lam)
            x_new = x + np.concatenate([dc.ravel(), dp.ravel()])
            e_new = problem.errors(x_new)
            evaluations += 1
            new = cost_of(e_new, s)
            if new < cost:
                break
            lam *= 4
        else:
            return x, evaluations, settled
        x, decrease = x_new, cost - new
        lam = max(lam / 3, 1e-9)
        if settled and decrease < tolerance * new:
            return x, evaluations, True
        e, Jc, Jp = problem.blocks(x)
    return x, evaluations, False


def _irls_scipy(problem: _Problem, x: np.ndarray, conf: np.ndarray, loss: str, scale: float,
                max_rounds: int, tolerance: float, jacobian: str):
    """Robust loss by reweighting rounds of ``least_squares`` (plain loss, sparse Jacobian,
    ``x_scale="jac"``). Returns (x, evaluations, converged)."""
    layout = problem.layout
    pattern = layout.sparsity(problem.cam_idx, problem.pt_idx) if jacobian == "numeric" else None
    evaluations, previous = 0, np.inf
    for _ in range(max_rounds):
        e = np.linalg.norm(problem.errors(x), axis=-1)
        cost = float(np.sum(conf * robust_cost(e, loss, scale)))
        if previous - cost < tolerance * previous:
            return x, evaluations, True
        previous = cost
        sw = np.sqrt(conf * robust_weights(e, loss, scale))
        fun = lambda x_, sw=sw: (problem.errors(x_) * sw[:, None]).ravel()  # noqa: E731
        jac = "2-point" if pattern is not None else (lambda x_, sw=sw: problem.jacobian(x_, sw))
        sol = least_squares(fun, x, jac=jac, jac_sparsity=pattern, x_scale="jac", method="trf",
                            tr_solver="lsmr", max_nfev=20, ftol=1e-8, xtol=1e-10)
        x, evaluations = sol.x, evaluations + sol.nfev
    return x, evaluations, False


def _build(rig: CameraRig, points2d: np.ndarray, weight: np.ndarray, points3d: np.ndarray,
           refine: tuple[str, ...], fix_first: bool):
    """(problem, conf (M,) in its order, kept (points in the problem), x (packed start)) of the
    observations seen by two cameras or more; arguments as in :func:`bundle_adjust`."""
    C, N = len(rig), points3d.shape[0]
    if points2d.shape != (C, N, 2) or weight.shape != (C, N) or points3d.shape != (N, 3):
        raise ValueError(f"expected points2d (C={C}, N, 2), weight (C, N), points3d (N, 3) with "
                         f"one N; got {points2d.shape}, {weight.shape}, {points3d.shape}")
    use = np.isfinite(points2d).all(-1) & (weight > 0) & np.isfinite(points3d).all(-1)
    use &= use.sum(0) >= 2
    kept = np.nonzero(use.any(0))[0]  # the points in the problem, renumbered 0..
    cam_idx, pt_idx = np.nonzero(use[:, kept])
    layout = _Layout(rig, len(kept), refine, fix_first)
    problem = _Problem(layout, cam_idx, pt_idx, points2d[:, kept][cam_idx, pt_idx])
    conf = weight[:, kept][cam_idx, pt_idx][problem.order]
    return problem, conf, kept, layout.pack(points3d[kept])


def bundle_adjust(rig: CameraRig, points2d: np.ndarray, weight: np.ndarray, points3d: np.ndarray,
                  refine: tuple[str, ...] = (), loss: str = "cauchy", loss_scale_px: float = 5.0,
                  max_iterations: int = 100, tolerance: float = 1e-6, fix_first: bool = True,
                  solver: str = "lm", jacobian: str = "analytic") -> BundleResult:
    """Refine cameras and 3D points together on the robust reprojection error.

    Args:
        rig: initial cameras (C of them); its K, distortion, R, t are the starting point.
        points2d: (C, N, 2) observations, pixels (distorted, as detected); NaN where missing.
        weight: (C, N) non-negative weights (confidence); 0 leaves an observation out. The cost
            is ``Σ weight · ρ(error)``.
        points3d: (N, 3) initial points in the rig's world frame (any unit, the rig's).
            Points that are NaN or seen by fewer than two cameras are left out (stay NaN).
        refine: intrinsics to refine per camera, some of :data:`INTRINSIC_PARAMETERS`.
        loss: ``"huber"``, ``"cauchy"``, ``"soft_l1"`` or ``"linear"`` (see :func:`robust_cost`).
        loss_scale_px: where the robust loss turns from quadratic to robust, pixels.
        max_iterations: LM iterations (``solver="lm"``) or reweighting rounds (``"scipy"``).
        tolerance: stop when the robust cost falls by less than this (relative).
        fix_first: hold camera 0's pose fixed (the gauge).
        solver: ``"lm"`` (the default: Levenberg–Marquardt on the Schur complement) or
            ``"scipy"`` (reweighted ``least_squares`` rounds; slower, see the module docstring).
        jacobian: for ``"scipy"``, ``"analytic"`` or ``"numeric"`` (finite differences over
            ``jac_sparsity``).

    Returns:
        :class:`BundleResult`.

    Example:
        >>> result = bundle_adjust(rig, xy, conf, X, refine=("focal",))  # doctest: +SKIP
    """
    C, N = len(rig), points3d.shape[0]
    problem, conf, kept, x = _build(rig, points2d, weight, points3d, refine, fix_first)
    layout = problem.layout
    if solver == "lm":
        x, evaluations, success = _levenberg_marquardt(problem, x, conf, loss, loss_scale_px,
                                                       max_iterations, tolerance)
    elif solver == "scipy":
        if layout.shared_column() is not None:
            raise ValueError("refine 'shared_focal' needs solver 'lm' (scipy's solver does not "
                             "tie the cameras' focal lengths)")
        x, evaluations, success = _irls_scipy(problem, x, conf, loss, loss_scale_px,
                                              max_iterations, tolerance, jacobian)
    else:
        raise ValueError(f"solver must be 'lm' or 'scipy'; got {solver!r}")
    rvec, t, K, dist, X = layout.unpack(x)
    out = CameraRig(c.replace(R=Rotation.from_rotvec(rvec[k]).as_matrix(), t=t[k], K=K[k],
                              dist=dist[k]) for k, c in enumerate(rig))
    errors, points = np.full((C, N), np.nan), np.full((N, 3), np.nan)
    errors[problem.cam_idx, kept[problem.pt_idx]] = np.linalg.norm(problem.errors(x), axis=-1)
    points[kept] = X
    return BundleResult(out, points, errors, evaluations, success)


@dataclass(frozen=True, eq=False)
class PoseCovariance:
    """The covariance of bundle adjustment's cameras at its solution (Gauss-Newton).

    Per camera the uncertain quantities are ``[a (3), centre (3), intrinsics refined]``: ``a`` the
    rotation error, radians, as a left perturbation (``R_true = exp([a]×) R``, camera frame),
    ``centre`` the camera centre ``-Rᵀt`` in the rig's units, then the refined intrinsics in
    :data:`INTRINSIC_PARAMETERS` order (focal length in pixels, ...).

    Attributes:
        cov: (C, P, C, P) covariance of those quantities, ``σ² (Jᵀ W J)⁻¹`` with camera 0's pose
            fixed and the scale fixed (no step of the translations along the centres' common
            expansion about camera 0's centre); camera 0's pose entries are zero.
        sigma_px: σ, the residual standard deviation (pixels) the covariance is scaled by:
            ``√(Σ w e² / dof)``, w the robust loss's weights at the solution.
        dof: degrees of freedom, 2 × observations minus the free parameters.
        refine: the intrinsics refined (their slots after the first 6).
        weakest: the smallest eigenvalue of the scaled information over the largest (near 0: a
            direction the observations do not fix, as for a person standing still).
    """

    cov: np.ndarray
    sigma_px: float
    dof: int
    refine: tuple[str, ...]
    weakest: float


def pose_covariance(rig: CameraRig, points2d: np.ndarray, weight: np.ndarray,
                    points3d: np.ndarray, refine: tuple[str, ...] = (), loss: str = "cauchy",
                    loss_scale_px: float = 5.0) -> PoseCovariance:
    """The covariance of the cameras of a bundle adjustment's solution (see :class:`PoseCovariance`).

    Args:
        rig, points2d (C, N, 2), weight (C, N), points3d (N, 3), refine, loss, loss_scale_px: the
            solution and the observations as given to :func:`bundle_adjust` (its ``rig`` and
            ``points`` after the last round); the robust loss's weights are taken at the solution
            with the solver's graduated scale (``max(loss_scale_px, 2 × median error)``).

    Returns:
        :class:`PoseCovariance`. A direction the observations do not fix gets a huge variance.
    """
    problem, conf, kept, x = _build(rig, points2d, weight, points3d, refine, True)
    layout = problem.layout
    e, Jc, Jp = problem.blocks(x)
    norms = np.linalg.norm(e, axis=1)
    w = conf * robust_weights(norms, loss, max(loss_scale_px, 2.0 * float(np.median(norms))))
    S = _Schur(problem, len(kept), e, Jc, Jp, w).reduced(0.0)[0]
    B = _gauge_basis(layout, rig)
    H = B.T @ S @ B
    lam, V = np.linalg.eigh((H + H.T) / 2)
    floor = max(float(lam.max()), 1e-300) * 1e-14
    weakest = float(max(lam.min(), 0.0) / max(lam.max(), 1e-300))
    dof = max(2 * len(e) - B.shape[1] - 3 * len(kept), 1)
    sigma2 = float(np.sum(w * norms ** 2) / dof)
    T = _to_pose_quantities(layout, x)  # d(quantities) = T d(parameters)
    cov = sigma2 * T @ B @ (V / np.maximum(lam, floor)) @ V.T @ B.T @ T.T
    C, P = len(rig), layout.per_cam
    return PoseCovariance(cov.reshape(C, P, C, P), float(np.sqrt(sigma2)), dof, layout.refine,
                          weakest)


def _gauge_basis(layout: _Layout, rig: CameraRig) -> np.ndarray:
    """(n, k) orthonormal basis of the camera-parameter steps the gauge allows, n = C × P:
    camera 0's pose fixed (when ``layout.fixed``), a ``shared_focal`` column one step for all
    cameras, and no step along the scale (the centres' common expansion about camera 0's)."""
    C, P = len(rig), layout.per_cam
    keep = ~(layout.fixed[:, None] & (np.arange(P) < 6)).ravel()
    M = np.eye(C * P)[:, keep]
    if "shared_focal" in layout.refine:  # (as in the solver: one focal step for all cameras)
        col = 6 + sum(INTRINSIC_PARAMETERS[r]
                      for r in layout.refine[:layout.refine.index("shared_focal")])
        tied = np.isin(np.nonzero(keep)[0], np.arange(C) * P + col)
        M = np.concatenate([M[:, ~tied], M[:, tied].sum(1, keepdims=True)], 1)
    gauge = np.zeros((C, P))  # d(parameters)/d(scale about camera 0's centre)
    gauge[:, 3:6] = rig.t + np.einsum("cij,j->ci", rig.R, rig.centers[0])
    v = np.linalg.lstsq(M, gauge.ravel(), rcond=None)[0]
    Q = np.linalg.svd(np.eye(len(v)) - np.outer(v, v) / max(v @ v, 1e-300))[0][:, :len(v) - 1]
    return np.linalg.qr(M @ Q)[0]


def _to_pose_quantities(layout: _Layout, x: np.ndarray) -> np.ndarray:
    """(n, n) block-diagonal Jacobian from the packed camera parameters (Rodrigues vector,
    translation, intrinsics) to :class:`PoseCovariance`'s (rotation error a, centre, intrinsics):
    ``a = J_l(ω) δω``; ``C = -Rᵀ t`` so ``δC = -Rᵀ δt - Rᵀ [t]× a``."""
    rvec, t, *_ = layout.unpack(x)
    R, Jl = _rotation_and_jacobian(rvec)
    C, P = len(rvec), layout.per_cam
    T = np.zeros((C, P, C, P))
    for c in range(C):
        block = np.eye(P)
        block[:3, :3] = Jl[c]
        block[3:6, 3:6] = -R[c].T
        block[3:6, :3] = -R[c].T @ _skew(t[c]) @ Jl[c]
        T[c, :, c, :] = block
    return T.reshape(C * P, C * P)


def linearized_refits(rig: CameraRig, points2d: np.ndarray, weight: np.ndarray,
                      points3d: np.ndarray, reweight: np.ndarray, refine: tuple[str, ...] = (),
                      loss: str = "cauchy", loss_scale_px: float = 5.0,
                      steps: int = 3) -> list[CameraRig]:
    """The cameras refitted on reweighted observations by a few Gauss-Newton steps from the
    solution (the robust weights recomputed at each), camera 0's pose and the scale fixed.

    Started at the solution of all the observations, the first step is the first-order change of
    the solution; the next ones follow the robust loss's reweighting. A bootstrap replicate (with
    ``reweight`` the count of each resampled frame's observations) costs ``steps`` reduced
    systems instead of a whole damped adjustment.

    Args:
        rig, points2d (C, N, 2), weight (C, N), points3d (N, 3), refine, loss, loss_scale_px: the
            solution and its observations, as in :func:`pose_covariance`.
        reweight: (B, C, N) or (B, N) factors on ``weight``, one set per refit.
        steps: Gauss-Newton steps per refit.

    Returns:
        B rigs (same names, sizes, order).
    """
    problem, conf, kept, x0 = _build(rig, points2d, weight, points3d, refine, True)
    layout, C = problem.layout, len(rig)
    B = _gauge_basis(layout, rig)
    reweight = np.asarray(reweight, float)
    if reweight.ndim == 2:
        reweight = np.broadcast_to(reweight[:, None], (len(reweight), C, reweight.shape[1]))
    rigs = []
    for factor in reweight:
        cb = conf * factor[:, kept][problem.cam_idx, problem.pt_idx]  # in the problem's order
        x = x0.copy()
        for _ in range(steps):
            x = _gauss_newton_step(problem, len(kept), x, cb, loss, loss_scale_px, B)
        rvec, t, K, dist, _ = layout.unpack(x)
        rigs.append(CameraRig(c.replace(R=Rotation.from_rotvec(rvec[k]).as_matrix(), t=t[k],
                                        K=K[k], dist=dist[k]) for k, c in enumerate(rig)))
    return rigs


def _gauss_newton_step(problem: _Problem, n_points: int, x: np.ndarray, conf: np.ndarray,
                       loss: str, scale: float, B: np.ndarray) -> np.ndarray:
    """x after one undamped, reweighted Gauss-Newton step on the cameras and points, the cameras'
    step within the columns of ``B`` (:func:`_gauge_basis`)."""
    e, Jc, Jp = problem.blocks(x)
    norms = np.linalg.norm(e, axis=1)
    w = conf * robust_weights(norms, loss, max(scale, 2.0 * float(np.median(norms))))
    system = _Schur(problem, n_points, e, Jc, Jp, w)
    S, b, Vinv, Wt = system.reduced(0.0)
    dc = B @ np.linalg.lstsq(B.T @ S @ B, B.T @ b, rcond=1e-12)[0]
    N = len(Vinv)
    dp = np.einsum("nij,nj->ni", Vinv, -system.gp - (Wt.reshape(3 * N, -1) @ dc).reshape(N, 3))
    return x + np.concatenate([dc, dp.ravel()])
