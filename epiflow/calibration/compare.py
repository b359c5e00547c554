"""How far two camera rigs are apart, free of the world gauge.

Cameras recovered from images are known up to a similarity of the world (scale, rotation,
translation): the gauge. Two calibrations of the same cameras are compared on what does not
depend on it:

- the relative rotation of each camera pair, R_ij = R_j R_iᵀ: the angle of R^A_ij (R^B_ij)ᵀ;
- the baseline direction of each pair, t_ij of :meth:`CameraRig.relative_pose` (camera i's
  centre seen from camera j, in j's frame): the angle between A's and B's;
- the distances between camera centres: as given (A / B, which shows whether both are metric
  and agree on the scale) and after one global scale, that of the similarity best mapping A's
  centres onto B's (Umeyama), which shows the shape of the rig;
- the focal lengths (the mean of f_x and f_y) in percent.

:func:`rig_errors` compares rigs whose cameras are in the same order (tests, benchmarks);
:func:`compare_rigs` matches the cameras by name first (``epiflow compare-cameras``).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from epiflow.calibration.camera import (CAMERA_NAME_RULE, CalibrationError, CameraRig,
                                        match_camera_names, match_rig)
from epiflow.calibration.similarity import umeyama

__all__ = ["rotation_angle_deg", "vector_angle_deg", "camera_distances", "rig_errors",
           "compare_rigs", "matched_cameras"]


def rotation_angle_deg(R: np.ndarray) -> np.ndarray:
    """Angle (degrees) of rotation matrices (..., 3, 3), accurate near 0 (atan2, not arccos)."""
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1) / 2
    axis = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                     R[..., 1, 0] - R[..., 0, 1]], -1)
    return np.degrees(np.arctan2(np.linalg.norm(axis, axis=-1) / 2, cos))


def vector_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (degrees) between vectors (..., 3), accurate near 0 and 180."""
    return np.degrees(np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, -1)))


def _pairs(C: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(C) for j in range(i + 1, C)]


def _focal(rig: CameraRig) -> np.ndarray:
    """(C,) mean of f_x and f_y, pixels."""
    return (rig.K[:, 0, 0] + rig.K[:, 1, 1]) / 2


def camera_distances(rig: CameraRig, pairs=None) -> np.ndarray:
    """(P,) distances between the centres of each pair (default: every pair i < j in row order),
    the rig's units."""
    c = rig.centers
    pairs = _pairs(len(rig)) if pairs is None else pairs
    return np.array([np.linalg.norm(c[i] - c[j]) for i, j in pairs])


def rig_errors(estimated: CameraRig, reference: CameraRig) -> dict:
    """How far an estimated rig is from a reference, cameras matched by order.

    Rotations and baseline directions between cameras are free of the world gauge (similarity);
    positions are compared after the similarity that best maps the estimated camera centres onto
    the reference ones (Umeyama).

    Returns:
        dict with, per pair (i, j), i < j, in ``pairs``:
        ``rotation_deg`` (P,) angle between estimated and reference relative rotations R_j R_iᵀ;
        ``baseline_deg`` (P,) angle between the baseline directions t_ij of
        :meth:`CameraRig.relative_pose` (camera i's centre seen from camera j, in j's frame);
        ``distance_ratio`` (P,) aligned estimated / reference camera distance (1 = right);
        per camera: ``focal_rel`` (C,) |f_est - f_ref| / f_ref with f the mean of f_x and f_y,
        ``position_m`` (C,) metres after the alignment;
        ``scale`` the similarity's scale (reference / estimated units); and the summaries
        ``rotation_deg_max``, ``baseline_deg_max``, ``distance_ratio_max_dev`` (max |ratio - 1|),
        ``focal_rel_max``, ``position_m_max`` as floats.
    """
    if len(estimated) != len(reference):
        raise ValueError(f"rig_errors: the rigs must have the same cameras in the same order; got "
                         f"{len(estimated)} estimated ({estimated.names}) and {len(reference)} "
                         f"reference ({reference.names})")
    pairs = _pairs(len(reference))
    rot, base = [], []
    for i, j in pairs:
        (Re, te), (Rr, tr) = estimated.relative_pose(i, j), reference.relative_pose(i, j)
        rot.append(rotation_angle_deg(Re @ Rr.T))
        base.append(vector_angle_deg(te, tr))
    s, R, t = umeyama(estimated.centers, reference.centers)
    aligned = s * estimated.centers @ R.T + t
    ratio = s * camera_distances(estimated, pairs) / camera_distances(reference, pairs)
    f_est, f_ref = _focal(estimated), _focal(reference)
    out = {"pairs": pairs, "rotation_deg": np.array(rot), "baseline_deg": np.array(base),
           "distance_ratio": ratio, "focal_rel": np.abs(f_est - f_ref) / f_ref,
           "position_m": np.linalg.norm(aligned - reference.centers, axis=1), "scale": s}
    return out | _rig_summary(out)


def _rig_summary(errors: dict) -> dict[str, float]:
    def top(a):
        return float(np.max(a)) if len(a) else 0.0
    return {"rotation_deg_max": top(errors["rotation_deg"]),
            "baseline_deg_max": top(errors["baseline_deg"]),
            "distance_ratio_max_dev": top(np.abs(errors["distance_ratio"] - 1)),
            "focal_rel_max": top(errors["focal_rel"]), "position_m_max": top(errors["position_m"])}


# -- two calibration files, cameras matched by name ---------------------------------------------
def matched_cameras(a: Sequence[str], b: Sequence[str], where_b: str = "B"
                    ) -> tuple[list[str], list[str]]:
    """The cameras two rigs share: (names in ``a``, the names in ``b`` they match), each of
    ``a`` matched as every command matches camera names (:data:`CAMERA_NAME_RULE`); a name of
    ``a`` matching no camera of ``b``, or several, is left out.

    Raises:
        CalibrationError: two cameras of ``a`` match one camera of ``b``.
    """
    names_a, names_b = [], []
    for name in a:
        try:
            found = match_camera_names([name], b, where_b)[0]
        except CalibrationError:
            continue
        names_a.append(str(name))
        names_b.append(str(b[found]))
    twice = sorted({n for n in names_b if names_b.count(n) > 1})
    if twice:
        raise CalibrationError(f"{where_b}: cameras {twice} are each matched by several cameras "
                               f"of the other calibration; rename them so that each matches one "
                               f"({CAMERA_NAME_RULE})")
    return names_a, names_b


def compare_rigs(a: CameraRig, b: CameraRig, where_a: str = "A", where_b: str = "B") -> dict:
    """The gauge-free differences of rig ``a`` from rig ``b`` (the module docstring), cameras
    matched by name (:func:`matched_cameras`; when no name matches and the counts agree, in
    order, with a warning, as :func:`~epiflow.calibration.camera.match_rig` does).

    Args:
        a, b: the rigs; ``where_a``, ``where_b`` name them (files) in messages.

    Returns:
        A JSON-able dict: ``cameras`` [[name in a, name in b], ...]; ``unmatched_a``,
        ``unmatched_b`` names; ``warnings``; ``scale`` the global scale (b units per a unit);
        ``pairs``: per camera pair (i < j in a's order) ``cameras`` [a name, a name],
        ``rotation_deg``, ``baseline_deg``, ``distance_a``, ``distance_b`` (each rig's units,
        metres for metric files), ``distance_ratio`` (a / b as given),
        ``distance_scaled_pct`` (100 (scale · d_a - d_b) / d_b); ``per_camera``: ``name``,
        ``focal_a_px``, ``focal_b_px``, ``focal_pct`` (100 (f_a - f_b) / f_b),
        ``position_diff`` (distance between the centres after the similarity, b's units); and
        ``summary``: medians and maxima of these.

    Raises:
        CalibrationError: fewer than two cameras in common (both rigs' names are listed).
    """
    names_a, names_b = matched_cameras(a.names, b.names, where_b)
    warnings = []
    if not names_a and len(a) == len(b):  # no name matches: in order, with match_rig's warning
        warnings = match_rig(b, a.names, where_b, by_order=True)[1]
        names_a, names_b = list(a.names), list(b.names)
    if len(names_a) < 2:
        raise CalibrationError(
            f"{where_a} and {where_b} have {len(names_a)} camera(s) in common {names_a}; "
            f"comparing two calibrations needs at least two cameras that both name ({where_a}: "
            f"{a.names}; {where_b}: {b.names}; names match {CAMERA_NAME_RULE}); rename the "
            f"cameras of one file so that they match")
    ra, rb = a.subset(names_a), b.subset(names_b)
    e = rig_errors(ra, rb)
    d_a, d_b = camera_distances(ra, e["pairs"]), camera_distances(rb, e["pairs"])
    f_a, f_b = _focal(ra), _focal(rb)
    pairs = [{"cameras": [names_a[i], names_a[j]], "rotation_deg": float(e["rotation_deg"][k]),
              "baseline_deg": float(e["baseline_deg"][k]), "distance_a": float(d_a[k]),
              "distance_b": float(d_b[k]), "distance_ratio": float(d_a[k] / d_b[k]),
              "distance_scaled_pct": float(100 * (e["distance_ratio"][k] - 1))}
             for k, (i, j) in enumerate(e["pairs"])]
    cams = [{"name": na, "name_b": nb, "focal_a_px": float(f_a[c]), "focal_b_px": float(f_b[c]),
             "focal_pct": float(100 * (f_a[c] - f_b[c]) / f_b[c]),
             "position_diff": float(e["position_m"][c])}
            for c, (na, nb) in enumerate(zip(names_a, names_b))]
    return {"a": where_a, "b": where_b, "cameras": [list(p) for p in zip(names_a, names_b)],
            "unmatched_a": [n for n in a.names if n not in names_a],
            "unmatched_b": [n for n in b.names if n not in names_b], "warnings": warnings,
            "scale": float(e["scale"]), "pairs": pairs, "per_camera": cams,
            "summary": _summary(pairs, cams)}


def _summary(pairs: list[dict], cams: list[dict]) -> dict[str, float]:
    def stat(rows, key, how):
        return float(how([r[key] for r in rows]))
    return {"rotation_deg_median": stat(pairs, "rotation_deg", np.median),
            "rotation_deg_max": stat(pairs, "rotation_deg", np.max),
            "baseline_deg_median": stat(pairs, "baseline_deg", np.median),
            "baseline_deg_max": stat(pairs, "baseline_deg", np.max),
            "distance_ratio_median": stat(pairs, "distance_ratio", np.median),
            "distance_scaled_pct_max_abs": float(max(abs(p["distance_scaled_pct"])
                                                     for p in pairs)),
            "focal_pct_max_abs": float(max(abs(c["focal_pct"]) for c in cams)),
            "position_diff_max": stat(cams, "position_diff", np.max)}
