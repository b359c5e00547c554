"""Cameras, calibration files, cameras from people, and triangulation."""
from epiflow.calibration.camera import CalibrationError, Camera, CameraRig

__all__ = ["Camera", "CameraRig", "CalibrationError"]
