"""A ``.tflite`` graph run by PyTorch, so BlazePose's networks can run on a GPU.

No offline converter handles MediaPipe's pose networks (``tflite2onnx`` 0.4.1 stops at the
detector's ``DENSIFY`` op; ``tf2onnx`` needs TensorFlow), but they use only a dozen plain ops,
which this module executes with ``torch.nn.functional``: the graph and each op's options are
read with the flatbuffer schema that ``ai-edge-litert`` ships, the weights (float16, some of
them sparse) once through LiteRT itself, which dequantizes and densifies them
(``experimental_preserve_all_tensors``). 4-D tensors are kept NCHW on the device; the outputs
come back NHWC as LiteRT gives them, so the two runtimes are interchangeable. Unlike LiteRT's
graph, the batch is free: reshapes take the batch of their input.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

__all__ = ["TorchModel", "SUPPORTED_OPS"]

SUPPORTED_OPS = ("ADD", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
                 "LOGISTIC", "MAX_POOL_2D", "PAD", "RESHAPE", "RESIZE_BILINEAR")
_CONSTANT_OPS = ("DEQUANTIZE", "DENSIFY")     # weights: evaluated once, by LiteRT
_ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}


def _tf_same_pad(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding (before, after) of one axis; more after when odd."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Op:
    """One operator of the graph: name, tensor indices, options read from the flatbuffer."""

    def __init__(self, name: str, inputs, outputs, options: dict):
        self.name, self.options = name, options
        self.inputs, self.outputs = list(inputs), list(outputs)


def _read_graph(path: Path) -> list[_Op]:
    """The operators of subgraph 0, with the options this executor needs."""
    from ai_edge_litert import schema_py_generated as S
    names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
    model = S.Model.GetRootAs(path.read_bytes(), 0)
    graph, ops = model.Subgraphs(0), []
    window = ("Padding", "StrideH", "StrideW", "FusedActivationFunction")
    option_types = {
        "CONV_2D": (S.Conv2DOptions, window + ("DilationHFactor", "DilationWFactor")),
        "DEPTHWISE_CONV_2D": (S.DepthwiseConv2DOptions,
                              window + ("DilationHFactor", "DilationWFactor", "DepthMultiplier")),
        "ADD": (S.AddOptions, ("FusedActivationFunction",)),
        "MAX_POOL_2D": (S.Pool2DOptions, window + ("FilterHeight", "FilterWidth")),
        "CONCATENATION": (S.ConcatenationOptions, ("Axis", "FusedActivationFunction")),
        "DEPTH_TO_SPACE": (S.DepthToSpaceOptions, ("BlockSize",)),
        "RESIZE_BILINEAR": (S.ResizeBilinearOptions, ("AlignCorners", "HalfPixelCenters"))}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        if name not in SUPPORTED_OPS + _CONSTANT_OPS:
            raise NotImplementedError(f"{path.name}: op {name} is not supported by the torch "
                                      f"runtime ({', '.join(SUPPORTED_OPS)}); use runtime='litert'")
        options = {}
        if name in option_types:
            kind, fields = option_types[name]
            table, raw = kind(), op.BuiltinOptions()
            table.Init(raw.Bytes, raw.Pos)
            options = {f: getattr(table, f)() for f in fields}
        ops.append(_Op(name, op.InputsAsNumpy(), op.OutputsAsNumpy(), options))
    return ops


class TorchModel:
    """A ``.tflite`` network executed by PyTorch on ``device`` (``"cpu"``, ``"cuda"``, ...).

    Same call as :class:`epiflow.detection.runtime.LiteRTModel`:
    ``run(x (B, H, W, 3) float32) -> list of (B, ...) float32`` in the file's output order.
    """

    def __init__(self, path, device: str = "cpu"):
        import torch
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
        self.path, self.device = Path(path), torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: this torch ({torch.__version__}) sees no CUDA "
                             f"GPU; install a CUDA build of torch or use device='cpu'")
        self.ops = _read_graph(self.path)
        with warnings.catch_warnings():        # "intended for debugging": here, once, to read
            warnings.simplefilter("ignore")     # the dequantized and densified weights
            it = Interpreter(str(self.path), experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=OpResolverType.
                             BUILTIN_WITHOUT_DEFAULT_DELEGATES)    # XNNPACK would skip them
        it.allocate_tensors()
        self.input_index = it.get_input_details()[0]["index"]
        self.input_shape = tuple(it.get_input_details()[0]["shape"][1:])
        self.output_indices = [o["index"] for o in it.get_output_details()]
        it.set_tensor(self.input_index, np.zeros((1, *self.input_shape), np.float32))
        it.invoke()
        computed = {o for op in self.ops if op.name in SUPPORTED_OPS for o in op.outputs}
        self.consts = {}
        for op in self.ops:
            for i in op.inputs:
                if i >= 0 and i != self.input_index and i not in computed and i not in self.consts:
                    self.consts[i] = it.get_tensor(int(i)).copy()
        self.weights = {i: self._to_device(self.consts.pop(i)) for i in list(self.consts)
                        if self.consts[i].dtype == np.float32}     # consts keeps the int shapes
        for op in self.ops:                    # (1, KH, KW, C) -> (C, 1, KH, KW): torch's groups
            if op.name == "DEPTHWISE_CONV_2D":
                self.weights[op.inputs[1]] = self.weights[op.inputs[1]].transpose(0, 1).contiguous()
        self.ops = [op for op in self.ops if op.name in SUPPORTED_OPS]

    def _to_device(self, v: np.ndarray):
        import torch
        t = torch.from_numpy(v)
        return (t.permute(0, 3, 1, 2) if t.ndim == 4 else t).contiguous().to(self.device)

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """x: (B, H, W, 3) float32 -> the outputs, each (B, ...) float32, NHWC like LiteRT."""
        import torch
        x = np.asarray(x, np.float32)
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise ValueError(f"{self.path.name} takes (B, {', '.join(map(str, self.input_shape))})"
                             f" float32; got {x.shape}")
        with torch.inference_mode():
            env = {self.input_index: torch.from_numpy(x).to(self.device).permute(0, 3, 1, 2)}
            for op in self.ops:
                env[op.outputs[0]] = getattr(self, "_" + op.name.lower())(op, env)
            outs = [env[i] for i in self.output_indices]
            return [(o.permute(0, 2, 3, 1) if o.ndim == 4 else o).float().cpu().numpy()
                    for o in outs]

    # ---- operators: 4-D tensors are NCHW here, TFLite's options and constants are NHWC ----
    def _arg(self, env, i):
        return env[i] if i in env else self.weights[i]

    @staticmethod
    def _activate(y, code: int):
        import torch.nn.functional as F
        if code not in _ACTIVATIONS:
            raise NotImplementedError(f"fused activation {code} is not supported")
        act = _ACTIVATIONS[code]
        return y if act is None else F.relu(y) if act == "relu" else F.relu6(y)

    def _same_or_valid(self, x, o: dict, k: tuple[int, int], value: float = 0.0):
        import torch.nn.functional as F
        if o["Padding"] != 0:                   # VALID
            return x
        dh, dw = o.get("DilationHFactor", 1) or 1, o.get("DilationWFactor", 1) or 1
        ph = _tf_same_pad(x.shape[2], k[0], o["StrideH"], dh)
        pw = _tf_same_pad(x.shape[3], k[1], o["StrideW"], dw)
        return F.pad(x, (*pw, *ph), value=value)

    def _conv_2d(self, op, env):
        import torch.nn.functional as F
        x, w = env[op.inputs[0]], self.weights[op.inputs[1]]           # w (O, I, KH, KW)
        b = self.weights.get(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        o = op.options
        x = self._same_or_valid(x, o, w.shape[2:])
        y = F.conv2d(x, w, b, stride=(o["StrideH"], o["StrideW"]),
                     dilation=(o["DilationHFactor"], o["DilationWFactor"]))
        return self._activate(y, o["FusedActivationFunction"])

    def _depthwise_conv_2d(self, op, env):
        import torch.nn.functional as F
        x, w = env[op.inputs[0]], self.weights[op.inputs[1]]           # w (C, 1, KH, KW)
        b = self.weights.get(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
        o = op.options
        x = self._same_or_valid(x, o, w.shape[2:])
        y = F.conv2d(x, w, b, stride=(o["StrideH"], o["StrideW"]),
                     dilation=(o["DilationHFactor"], o["DilationWFactor"]), groups=x.shape[1])
        return self._activate(y, o["FusedActivationFunction"])

    def _add(self, op, env):
        a, b = (self._arg(env, i) for i in op.inputs)
        for t in (a, b):
            if t.ndim == 1 and max(a.ndim, b.ndim) == 4:
                raise NotImplementedError("ADD of a 4-D tensor and a vector (NHWC broadcast)")
        return self._activate(a + b, op.options["FusedActivationFunction"])

    def _max_pool_2d(self, op, env):
        import torch.nn.functional as F
        o = op.options
        k = (o["FilterHeight"], o["FilterWidth"])
        x = self._same_or_valid(env[op.inputs[0]], o, k, value=float("-inf"))
        y = F.max_pool2d(x, k, (o["StrideH"], o["StrideW"]))
        return self._activate(y, o["FusedActivationFunction"])

    def _pad(self, op, env):
        import torch.nn.functional as F
        x, p = env[op.inputs[0]], self.consts[op.inputs[1]]           # p (4, 2) NHWC
        if x.ndim != 4 or p[0].any():
            raise NotImplementedError("PAD other than of the spatial and channel axes of 4-D")
        return F.pad(x, (*p[2], *p[1], *p[3]))

    def _reshape(self, op, env):
        x = env[op.inputs[0]]
        shape = [int(s) for s in self.consts[op.inputs[1]]]
        if x.ndim == 4:
            x = x.permute(0, 2, 3, 1)
        y = x.reshape(x.shape[0], *shape[1:])                         # the batch is free
        return y.permute(0, 3, 1, 2) if y.ndim == 4 else y

    def _concatenation(self, op, env):
        import torch
        xs = [self._arg(env, i) for i in op.inputs]
        axis = op.options["Axis"] % xs[0].ndim
        if xs[0].ndim == 4:
            axis = {0: 0, 1: 2, 2: 3, 3: 1}[axis]
        return self._activate(torch.cat(xs, axis), op.options["FusedActivationFunction"])

    def _depth_to_space(self, op, env):
        x, bs = env[op.inputs[0]], op.options["BlockSize"]             # TF's DCR channel order
        B, C, H, W = x.shape
        c = C // (bs * bs)
        return x.view(B, bs, bs, c, H, W).permute(0, 3, 4, 1, 5, 2).reshape(B, c, H * bs, W * bs)

    def _resize_bilinear(self, op, env):
        import torch.nn.functional as F
        o = op.options
        if o["AlignCorners"] or not o["HalfPixelCenters"]:
            raise NotImplementedError("RESIZE_BILINEAR other than half-pixel centres")
        size = [int(s) for s in self.consts[op.inputs[1]]]
        return F.interpolate(env[op.inputs[0]], size=size, mode="bilinear", align_corners=False)

    def _logistic(self, op, env):
        import torch
        return torch.sigmoid(env[op.inputs[0]])
