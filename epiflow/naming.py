"""Ordering names the way people number them: the one natural sort key of epiflow.

Cameras, sessions, videos, frame files and OpenPose folders are ordered by it, never as plain
strings (where ``cam_10`` comes before ``cam_2``). Bottom layer: imports nothing of epiflow.
"""
from __future__ import annotations

import re

__all__ = ["natural_key"]


def natural_key(name) -> list:
    """Sort key that orders embedded numbers by value and the rest ignoring case.

    ``sorted(["cam10", "Cam2", "cam1"], key=natural_key) == ["cam1", "Cam2", "cam10"]``. The key
    alternates text and integers (text first, possibly empty), so any two keys compare.

    Args:
        name: a string (anything else is turned into one with ``str``).
    """
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", str(name))]
