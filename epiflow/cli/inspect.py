"""``epiflow inspect STORE``: what a pose store holds, per session: frames, cameras, how the
cameras were obtained and how well they fit (median reprojection error of the labels), 2D and
3D label coverage, status and failures, and the people labelled (per person: its id, frames
labelled, and per camera the share of frames it detects the person, the share of the person's
labels it was used in and the median reprojection error of its detections of the person, so a
camera that misses or disagrees with one person shows by name); the warnings stored with each
session go to stderr, one line each. ``--session ID`` adds a per-camera table."""
from __future__ import annotations

import json

import numpy as np

from epiflow.cli import print_warnings
from epiflow.store import STAGES, PoseStore, Session

__all__ = ["register", "run", "session_summary", "verdict_summary", "sync_summary"]


def register(subparsers) -> None:
    p = subparsers.add_parser("inspect", help="summarise a pose store (sessions, cameras, labels, "
                                              "failures)", description=__doc__)
    p.add_argument("store", help="the store: a folder or an fsspec URL")
    p.add_argument("--session", metavar="ID", help="also show this session's cameras")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run)


def _median(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.median(vals)) if vals else None


def session_summary(s: Session) -> dict:
    """One session in numbers: frames, cameras, status, calibration, 2D / 3D coverage, and its
    stored warnings."""
    out = {"session": s.id, "status": "complete" if s.is_complete else
           ("failed" if s.failure else "incomplete"),
           "stages": s.status, "failure": s.failure,
           "frames": s.n_frames, "cameras": len(s.camera_names),
           "joint_set": s.joint_set, "fps": s.fps,
           "calibration": s.calibration.get("method"),
           "reproj_px": _median((s.label_summary.get("median_reproj_px_per_camera")
                                 or {}).values()),
           "gt3d": s.gt3d is not None if "keypoints2d" in s.group else False,
           "verdict": ((s.calibration.get("report") or {}).get("verdict") or {}).get("verdict"),
           "warnings": s.warnings}
    if "keypoints2d" in s.group and "pseudo3d_weight" in s.group:  # (not when cut short)
        out["coverage_2d"] = float((np.asarray(s.keypoints2d[..., 2]) > 0).mean())
        w = np.asarray(s.pseudo3d_weight[:])
        out["coverage_3d"] = float((w > 0).mean())
        out["mean_weight"] = float(w[w > 0].mean()) if (w > 0).any() else None
        if s.has_labels and s.has_cameras:
            out["people"] = people_summary(s)
    return out


def people_summary(s: Session) -> list[dict]:
    """Per labelled person: ``id``, ``frames_labelled`` (frames with any joint labelled) and
    ``cameras`` {camera: {``detected``, ``used``, ``reproj_px``} (see
    :func:`~epiflow.pipeline.triangulate.person_camera_quality`) and ``refused``: share of the
    frames where the association refused the camera's detection of the person because it
    disagrees with the other views (from the stored reasons; None where none are stored)}."""
    from epiflow.calibration.people import VIEW_REASON_TEXT, ViewReason
    from epiflow.pipeline.triangulate import person_camera_quality

    labels = s.labels()
    quality = person_camera_quality(s.rig, labels, np.asarray(s.keypoints2d[:]))
    reasons = s.label_summary.get("people") or {}
    disagrees = VIEW_REASON_TEXT[ViewReason.DISAGREES]
    for q in quality:
        for name, cam in q["cameras"].items():
            n = ((reasons.get(str(q["id"])) or {}).get("cameras") or {}).get(name, {})
            cam["refused"] = n[disagrees] / len(labels.weight) if disagrees in n else None
    return [{"id": q["id"],
             "frames_labelled": int((labels.weight[:, n] > 0).any(-1).sum()),
             "cameras": q["cameras"]} for n, q in enumerate(quality)]


def _pct(v) -> str:
    return _fmt(None if v is None else 100 * v, ".0f")


def _people_lines(row: dict) -> list[str]:
    """A line per person of a session row, then a table per person: per camera, the share of
    frames it detects the person, the share of the person's labels that used it, and the median
    reprojection error of the person's labels in it."""
    lines = []
    for p in row.get("people") or []:
        cams = p["cameras"]
        lines.append(f"  {row['session']} person {p['id']}: {p['frames_labelled']} of "
                     f"{row['frames']} frames labelled")
        lines.append(f"    {'camera':<12}{'detected %':>11}{'refused %':>10}{'used %':>8}"
                     f"{'reproj px':>11}")
        lines += [f"    {name:<12}{_pct(v['detected']):>11}{_pct(v['refused']):>10}"
                  f"{_pct(v['used']):>8}{_fmt(v['reproj_px'], '.1f'):>11}"
                  for name, v in cams.items()]
    if lines:
        lines += ["  detected %: frames the camera has the person; refused %: frames its detection "
                  "was refused (disagrees with the other views)",
                  "  used %: the person's labels that used the camera; reproj px: median "
                  "distance of its detections of the person to the labels' projection"]
    return lines


def sync_summary(s: Session) -> list[str]:
    """The time offsets of a session's unsynchronized cameras, headed by the session (the lines
    ``calibrate`` prints); [] for synchronized cameras or before they are synchronized."""
    from epiflow.calibration.sync import offset_lines
    sync = s.time_sync or {}
    if not sync.get("report"):
        return []
    return [f"session {s.id}: cameras not synchronized; time offsets from the person (seconds "
            f"on {s.camera_names[0]}'s clock at which each camera's first frame was taken):",
            *("  " + line for line in offset_lines(sync["report"]))]


def verdict_summary(s: Session) -> list[str]:
    """The lines :func:`~epiflow.calibration.verdict.verdict_lines` prints for the verdict on a
    session's cameras calibrated from people, headed by the session; [] for given cameras."""
    from epiflow.calibration.verdict import verdict_lines
    verdict = (s.calibration.get("report") or {}).get("verdict")
    if not verdict:
        return []
    return [f"session {s.id}: " + line if i == 0 else line
            for i, line in enumerate(verdict_lines(verdict))]


def _fmt(v, spec="") -> str:
    if v is None:
        return "-"
    return format(v, spec) if spec else str(v)


def _table(rows: list[dict]) -> str:
    head = (f"{'session':<22}{'status':<11}{'frames':>7}{'cams':>5}{'people':>7}  {'cameras':<8}"
            f"{'reproj px':>10}{'2D %':>7}{'3D %':>7}{'weight':>8}  gt3d")
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['session'][:21]:<22}{r['status']:<11}{_fmt(r['frames']):>7}{r['cameras']:>5}"
            f"{_fmt(len(r['people']) if 'people' in r else None):>7}  "
            f"{_fmt(r['calibration']):<8}{_fmt(r['reproj_px'], '.2f'):>10}"
            f"{_fmt(r.get('coverage_2d') and 100 * r['coverage_2d'], '.1f'):>7}"
            f"{_fmt(r.get('coverage_3d') and 100 * r['coverage_3d'], '.1f'):>7}"
            f"{_fmt(r.get('mean_weight'), '.2f'):>8}  {'yes' if r['gt3d'] else 'no'}")
    lines += [line for r in rows for line in _people_lines(r)]
    failed = [r for r in rows if r["failure"]]
    lines += [f"FAILED {r['session']} at {r['failure']['stage']}: {r['failure']['reason']}"
              for r in failed]
    return "\n".join(lines)


def _cameras(s: Session) -> str:
    rig = s.rig
    kp = np.asarray(s.keypoints2d[..., 2]).max(axis=2)   # (T, C, J): any slot
    per_cam = s.label_summary.get("median_reproj_px_per_camera") or {}
    share = s.label_summary.get("camera_share") or {}  # of the labels of joints it sees
    lines = [f"{'camera':<12}{'size':>11}{'focal px':>10}{'centre (m)':>24}{'2D %':>7}"
             f"{'reproj px':>10}{'used % *':>9}"]
    for c, cam in enumerate(rig):
        centre = " ".join(f"{v:6.2f}" for v in cam.center)
        used = share.get(cam.name)
        lines.append(f"{cam.name:<12}{cam.size[0]:>5}x{cam.size[1]:<5}{cam.K[0, 0]:>10.1f}"
                     f"{centre:>24}{100 * (kp[:, c] > 0).mean():>7.1f}"
                     f"{_fmt(per_cam.get(cam.name), '.2f'):>10}"
                     f"{_fmt(None if used is None else 100 * used, '.1f'):>9}")
    lines += ["2D %: frame-joints with any person detected, all people pooled (per person: the "
              "people tables above); reproj px: median over the views the labels used",
              "* used %: of the labels of the joints the camera sees, the share that used it "
              "(the measure of the run's 'used in only' warnings; all people pooled)"]
    return "\n".join(lines)


def run(args) -> int:
    store = PoseStore.open(args.store)
    session = store.session(args.session) if args.session else None  # refused before output
    rows = [session_summary(s) for s in store.sessions()]
    damaged = store.damaged_entries()
    if args.json:
        print(json.dumps({"store": store.url, "sessions": rows, "damaged": damaged}, indent=2))
        return 0
    n_done = sum(r["status"] == "complete" for r in rows)
    frames = sum(r["frames"] or 0 for r in rows if r["status"] == "complete")
    plural = "" if len(rows) == 1 else "s"
    print(f"store {store.url}: {len(rows)} session{plural}, {n_done} complete ({frames} frames); "
          f"stages {', '.join(STAGES)}")
    print(_table(rows))
    for s in store.sessions():
        if sync_summary(s):
            print("\n".join(sync_summary(s)))
        print("\n".join(verdict_summary(s)) or f"session {s.id}: cameras not from people "
              f"({s.calibration.get('method') or 'not calibrated'}): no verdict")
    for r in rows:
        print_warnings("inspect", r["warnings"], f"session {r['session']}")
    for name, problem in damaged.items():
        print(f"NOT A SESSION sessions/{name}: {problem}; the other sessions read as usual "
              f"(remove that folder from the store if nothing of yours is in it)")
    if session is not None:
        print(f"\nsession {args.session}:")
        print(_cameras(session))
    return 0
