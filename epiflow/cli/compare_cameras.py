"""``epiflow compare-cameras A B``: how far two calibrations of the same cameras are apart, free
of the world gauge, so a calibration can be checked against a reference without code.

    epiflow compare-cameras calib/cameras.toml Calib_qualisys.toml
    epiflow compare-cameras Calib_qualisys.toml Calib.qca.txt --json

A and B are any calibration files epiflow reads (camera TOML, Qualisys .qca.txt, caliscope
config.toml, Shelf calibration.json), in any mix. Cameras are matched by name (``cam01`` matches
``cam_01``; in order, with a warning, when no name matches and the counts agree); cameras only one
side has are named. Printed per camera pair: the angle between A's and B's relative rotation
(degrees), between their baseline directions (degrees), the distance between the two centres in
each (the files' units: metres) and its ratio A / B as given and, in percent, after one global
scale (that of the similarity best mapping A's centres onto B's); per camera: the focal lengths
(mean of f_x, f_y) and their difference in percent of B's, and how far A's centre lies from B's
after the similarity. Then medians and maxima. ``--json`` prints all of it as one JSON object
(:func:`epiflow.calibration.compare.compare_rigs`).
"""
from __future__ import annotations

import argparse
import json

__all__ = ["register", "run", "format_comparison"]


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare-cameras", help="gauge-free differences of two calibrations (rotations, "
                                "baselines, distances, focal lengths)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", metavar="A", help="a calibration file (the one to check)")
    p.add_argument("b", metavar="B", help="a calibration file (the reference)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.set_defaults(func=run)


def _load(path: str, arg: str):
    """The rig of calibration file ``path``; an error names the argument ``arg``."""
    from epiflow.calibration.formats import load_rig
    try:
        return load_rig(path)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"argument {arg}: {err}") from None
    except ValueError as err:
        raise ValueError(f"argument {arg}: {err}") from None


def format_comparison(c: dict) -> list[str]:
    """The lines ``epiflow compare-cameras`` prints for a
    :func:`~epiflow.calibration.compare.compare_rigs` result."""
    renamed = [f"{a}={b}" for a, b in c["cameras"] if a != b]
    lines = [f"A: {c['a']}", f"B: {c['b']}",
             f"{len(c['cameras'])} cameras in common"
             + (f" ({', '.join(renamed)})" if renamed else "")]
    lines += [f"only in {side}: {c['unmatched_' + side.lower()]}" for side in ("A", "B")
              if c["unmatched_" + side.lower()]]
    width = max(len(" - ".join(p["cameras"])) for p in c["pairs"])
    lines += ["", f"{'pair':<{width}}  {'rot deg':>8}  {'base deg':>8}  {'dist A':>8}  "
                  f"{'dist B':>8}  {'A/B':>7}  {'scaled %':>8}"]
    lines += [f"{' - '.join(p['cameras']):<{width}}  {p['rotation_deg']:8.3f}  "
              f"{p['baseline_deg']:8.3f}  {p['distance_a']:8.3f}  {p['distance_b']:8.3f}  "
              f"{p['distance_ratio']:7.4f}  {p['distance_scaled_pct']:+8.2f}" for p in c["pairs"]]
    width = max(len(x["name"]) for x in c["per_camera"] + [{"name": "camera"}])
    lines += ["", f"{'camera':<{width}}  {'focal A px':>10}  {'focal B px':>10}  "
                  f"{'diff %':>7}  {'position diff':>13}"]
    lines += [f"{x['name']:<{width}}  {x['focal_a_px']:10.1f}  {x['focal_b_px']:10.1f}  "
              f"{x['focal_pct']:+7.2f}  {x['position_diff']:13.4f}" for x in c["per_camera"]]
    s = c["summary"]
    lines += ["", f"relative rotations: median {s['rotation_deg_median']:.3g} deg, max "
                  f"{s['rotation_deg_max']:.3g} deg; baseline directions: median "
                  f"{s['baseline_deg_median']:.3g} deg, max {s['baseline_deg_max']:.3g} deg",
              f"distances: A/B median {s['distance_ratio_median']:.4f} as given; after one "
              f"global scale (B = {c['scale']:.4f} x A) within "
              f"{s['distance_scaled_pct_max_abs']:.3g} %; focal lengths within "
              f"{s['focal_pct_max_abs']:.3g} %",
              "rot/base: degrees between A's and B's relative rotation / baseline direction of "
              "each pair; dist: the files' units (metres); scaled %: 100 (scale x dist A - "
              "dist B) / dist B; position diff: B's units, after the similarity"]
    return lines


def run(args) -> int:
    from epiflow.calibration.compare import compare_rigs
    from epiflow.cli import print_warnings
    a, b = _load(args.a, "A"), _load(args.b, "B")
    comparison = compare_rigs(a, b, args.a, args.b)
    if args.json:
        print(json.dumps(comparison, indent=2))
    else:
        print("\n".join(format_comparison(comparison)))
    print_warnings("compare-cameras", comparison["warnings"])
    return 0
