"""Where the BlazePose networks run: a small runtime seam, LiteRT on the CPU today.

The two networks are the ``.tflite`` files inside the pinned ``mediapipe==0.10.21`` wheel
(``mediapipe/modules/pose_detection/pose_detection.tflite``, the person detector, and
``mediapipe/modules/pose_landmark/pose_landmark_full.tflite``, 33 landmarks from a person
crop); they are read from the installed package and never downloaded.

A runtime is anything with ``run(x (B, H, W, 3) float32) -> list of (B, ...) float32 arrays``
(:class:`Runtime`):

- ``"litert"`` (the default): :class:`LiteRTModel`, ``ai-edge-litert`` with XNNPACK on the CPU;
- ``"torch"``: :class:`epiflow.detection.tflite_torch.TorchModel`, the same graph and weights
  executed by PyTorch on any ``device`` (``"cuda"`` for a GPU), outputs equal to LiteRT's to
  float32 rounding (tests/detection/test_blazepose.py checks it on the CPU).

ONNX Runtime is not offered: it needs the models converted, and the offline converters fail
(``tflite2onnx`` 0.4.1 stops on the detector's ``DENSIFY`` op, its sparse float16 weights;
``tf2onnx`` needs TensorFlow). ``runtime="onnx"`` raises and says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = ["Runtime", "LiteRTModel", "model_file", "load_model", "RUNTIMES"]

RUNTIMES = ("litert", "torch")
MODELS = {"pose_detection": "pose_detection/pose_detection.tflite",
          "pose_landmark_full": "pose_landmark/pose_landmark_full.tflite"}


class Runtime(Protocol):
    """A loaded network: one batched call in, its output tensors out."""

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """x: (B, H, W, 3) float32 -> the network's outputs, each (B, ...) float32."""


def model_file(name: str) -> Path:
    """Path of one of the BlazePose networks inside the installed mediapipe wheel."""
    if name not in MODELS:
        raise ValueError(f"model {name!r} is not one of {sorted(MODELS)}")
    import mediapipe
    path = Path(mediapipe.__file__).parent / "modules" / MODELS[name]
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the mediapipe wheel ships it "
                                f"(pip install mediapipe==0.10.21)")
    return path


class LiteRTModel:
    """A ``.tflite`` network in LiteRT (XNNPACK on the CPU), batched where the network allows.

    One interpreter per batch size is kept (resizing the input and re-allocating costs more
    than a small network's call), so a batch of B crops is one ``invoke``. A network whose
    reshapes fix the batch at 1 (BlazePose's person detector) is run once per image instead:
    that is found on its first batched call, by the outputs' leading size.

    Args:
        path: the ``.tflite`` file. num_threads: CPU threads of each call.
    """

    def __init__(self, path, num_threads: int = 1):
        self.path = Path(path)
        self.num_threads = num_threads
        self._by_batch: dict[int, object] = {}
        self.input_shape = tuple(self._interpreter(1).get_input_details()[0]["shape"][1:])
        self.batchable: bool | None = None      # unknown until a batch of > 1 is run

    def _interpreter(self, batch: int):
        if batch not in self._by_batch:
            from ai_edge_litert.interpreter import Interpreter
            it = Interpreter(str(self.path), num_threads=self.num_threads)
            if batch != 1:
                index = it.get_input_details()[0]["index"]
                shape = [batch, *it.get_input_details()[0]["shape"][1:]]
                it.resize_tensor_input(index, shape)
            it.allocate_tensors()
            self._by_batch[batch] = it
        return self._by_batch[batch]

    def _invoke(self, x: np.ndarray) -> list[np.ndarray]:
        it = self._interpreter(len(x))
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        return [it.get_tensor(o["index"]).copy() for o in it.get_output_details()]

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """x: (B, H, W, 3) float32 -> the outputs, each (B, ...) float32, in the file's order."""
        x = np.ascontiguousarray(x, np.float32)
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise ValueError(f"{self.path.name} takes (B, {', '.join(map(str, self.input_shape))})"
                             f" float32; got {x.shape}")
        if len(x) == 1 or self.batchable is False:
            return [np.concatenate(o) for o in zip(*(self._invoke(x[i:i + 1])
                                                      for i in range(len(x))))]
        outs = self._invoke(x)
        self.batchable = all(o.shape[0] == len(x) for o in outs)
        return outs if self.batchable else self.run(x)


def load_model(name: str, runtime: str = "litert", num_threads: int = 1,
               device: str = "cpu") -> Runtime:
    """One of the BlazePose networks (:data:`MODELS`) loaded in ``runtime``.

    Args:
        num_threads: LiteRT's CPU threads per call. device: torch's device (``"cuda"``).
    """
    if runtime == "onnx":
        raise NotImplementedError(
            "runtime='onnx' is not available: the MediaPipe .tflite models do not convert "
            "offline (tflite2onnx 0.4.1 stops at the detector's DENSIFY op; tf2onnx needs "
            "TensorFlow); use runtime='torch' with device='cuda' for a GPU")
    if runtime not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}; got {runtime!r}")
    if device != "cpu" and runtime != "torch":
        raise ValueError(f"device={device!r} needs runtime='torch'; LiteRT runs on the CPU")
    if runtime == "torch":
        from epiflow.detection.tflite_torch import TorchModel
        return TorchModel(model_file(name), device)
    return LiteRTModel(model_file(name), num_threads)
