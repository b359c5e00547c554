"""Person crops around 2D joints (the pipeline stores them, prediction makes them)."""
from __future__ import annotations

import numpy as np

from epiflow.detection.crops import person_crops


class TestCrops:
    def test_crop_centres_on_the_joints(self):
        frame = np.zeros((200, 300, 3), np.uint8)
        frame[50:150, 100:140] = (0, 0, 255)                    # a red (BGR) box
        kp = np.array([[[100, 50, 1], [140, 150, 1], [0, 0, 0.0]]])
        crops, boxes = person_crops([frame], kp, size=64, margin=1.0)
        assert np.allclose(boxes[0], [70, 50, 170, 150], atol=1e-4)
        red = crops[0, ..., 0] > 128                            # RGB now
        cols = np.flatnonzero(red.any(0))
        assert abs(cols[0] - 19.2) <= 1.5 and abs(cols[-1] - 44.8) <= 1.5
        none, nobox = person_crops([frame], np.full((1, 3, 3), np.nan), size=8)
        assert not none.any() and np.isnan(nobox).all()
