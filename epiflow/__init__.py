"""epiflow: 3D human pose from synchronized multi-camera video, without 3D ground truth."""
__version__ = "0.1.0"
