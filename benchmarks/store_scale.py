"""Does the pipeline stay flat as a store grows? One run builds a store of many small synthetic
sessions; the time per session of the first and the last 50 should match.

    python benchmarks/store_scale.py [--sessions 200] [--frames 30] [--out DIR]

Each session is a synthetic capture of CMU motion (4 cameras, its true cameras given) that is
ingested, triangulated and written by the session workers of a local Ray (all CPUs). Printed:
the seconds per session over the first and last 50 sessions to complete, and what reading the
store costs at its full size (open + list, one session's labels).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def per_session(finished: list[float], first: int, last: int) -> float:
    """Seconds per session between the ``first``-th and the ``last``-th completion."""
    return (finished[last - 1] - finished[first - 1]) / (last - first)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--out", default="", help="folder for the store (default: a temp folder)")
    args = ap.parse_args()
    from epiflow.pipeline.config import RunConfig, SyntheticConfig
    from epiflow.pipeline.orchestrate import run_pipeline
    from epiflow.store import PoseStore

    root = Path(args.out or tempfile.mkdtemp(prefix="epiflow_scale_"))
    store_path = root / "scale.zarr"
    shutil.rmtree(store_path, ignore_errors=True)
    cfg = RunConfig(out=str(store_path), synthetic_sessions=args.sessions,
                    synthetic=SyntheticConfig(frames=args.frames))
    report = run_pipeline(cfg, progress=True)
    done = sorted(v["finished_s"] for v in report.sessions.values() if v["status"] == "complete")
    n, k = len(done), min(50, len(done) // 2)
    first, last = per_session(done, 1, k + 1), per_session(done, n - k, n)

    t0 = time.perf_counter()
    store = PoseStore.open(store_path)
    ids = store.session_ids()
    t_list = time.perf_counter() - t0
    reads = []
    for sid in (ids[len(ids) // 2], ids[0], ids[-1]):   # the first read imports the codecs
        t0 = time.perf_counter()
        s = store.session(sid)
        _ = (s.pseudo3d[:], s.pseudo3d_weight[:], s.keypoints2d[:], s.rig)
        reads.append(time.perf_counter() - t0)
    reads = reads[1:]
    size = sum(f.stat().st_size for f in store_path.rglob("*") if f.is_file())

    print(f"\n{n} of {args.sessions} sessions complete ({args.frames} frames x 4 cameras each) in "
          f"{report.wall_s:.1f} s, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'':<44}{'s/session':>10}")
    print(f"{f'first {k} sessions':<44}{first:>10.3f}")
    print(f"{f'last {k} sessions':<44}{last:>10.3f}")
    print(f"{'ratio last / first':<44}{last / first:>10.2f}")
    quarters = [per_session(done, max(1, q * n // 4), (q + 1) * n // 4) for q in range(4)]
    print(f"{'per quarter of the sessions':<44}" + "".join(f"{q:>7.3f}" for q in quarters))
    print(f"store: {size / 1e6:.1f} MB; open + list {len(ids)} sessions {1e3 * t_list:.0f} ms; "
          f"read one session's arrays: first {1e3 * reads[0]:.0f} ms, last {1e3 * reads[1]:.0f} ms")
    print(report.table())
    if not args.out:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
