"""EpipolarPose's image model: a ResNet backbone, a deconvolution head, volumetric heatmaps and a
soft-argmax (integral regression) that reads a 3D pose out of them.

Input: person crops ``(B, 3, S, S)`` float in [0, 1] (S = ``config.image_size``). Output:
``(B, J, 3)``, the pose root-relative in the camera frame, metres. The heatmap volume spans the
cube ``[-cube_m/2, cube_m/2]^3`` around the person: its x and y axes follow the crop's (camera x
right, y down), its z axis the depth from the camera. The expected position under each joint's
softmax-normalised heatmap is that joint's coordinate; the root's is subtracted.

The backbone is written here (torchvision has no CPU build on some machines); its parameter
names are torchvision's, so with the standard widths (64) and depths ((2, 2, 2, 2) = ResNet-18)
a checkpoint loads on either. Where torchvision is importable and the layout is standard, its
constructor builds the backbone.

Example:
    >>> model = EpipolarImageModel(ImageModelConfig(image_size=64, width=8), n_joints=17)
    >>> model(torch.rand(2, 3, 64, 64)).shape
    torch.Size([2, 17, 3])
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["ImageModelConfig", "ResNetBackbone", "EpipolarImageModel", "soft_argmax_3d"]


@dataclass(frozen=True)
class ImageModelConfig:
    """Image model settings; the defaults are small so that a CPU test runs in seconds.

    ``layers``: residual blocks per stage (ResNet-18 = (2, 2, 2, 2)); ``width``: channels of the
    first stage (ResNet: 64); ``deconv``: channels of each of the three deconvolution layers;
    ``depth_bins``: heatmap resolution along depth; ``cube_m``: edge of the volume, metres.
    """

    image_size: int = 64
    layers: tuple[int, ...] = (1, 1, 1, 1)
    width: int = 16
    deconv: int = 64
    depth_bins: int = 16
    cube_m: float = 2.0
    root: int = 0


class _BasicBlock(nn.Module):
    """ResNet basic block; parameter names as torchvision's ``BasicBlock``."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNetBackbone(nn.Module):
    """ResNet without its classifier: ``(B, 3, H, W) -> (B, 8 * width, H / 32, W / 32)``."""

    def __init__(self, layers: tuple[int, ...] = (2, 2, 2, 2), width: int = 64):
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"ResNet layers must be 4 positive block counts; got {layers}")
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for i, n in enumerate(layers):
            cout = width * 2 ** i
            blocks = [_BasicBlock(cin if b == 0 else cout, cout, 2 if (b == 0 and i > 0) else 1)
                      for b in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = cout
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def _torchvision_backbone(layers: tuple[int, ...], width: int) -> nn.Module | None:
    """torchvision's ResNet-18/34 trunk when importable and the layout is standard, else None."""
    if width != 64 or tuple(layers) not in ((2, 2, 2, 2), (3, 4, 6, 3)):
        return None
    try:
        from torchvision.models import resnet18, resnet34
    except ImportError:
        return None
    net = (resnet18 if tuple(layers) == (2, 2, 2, 2) else resnet34)(weights=None)
    net.fc, net.avgpool = nn.Identity(), nn.Identity()
    trunk = nn.Sequential()  # keep torchvision's parameter names at the top level
    for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
        trunk.add_module(name, getattr(net, name))
    trunk.out_channels = 512
    return trunk


def soft_argmax_3d(heatmaps: torch.Tensor, extent: float) -> torch.Tensor:
    """Expected (x, y, z) under softmax-normalised volumetric heatmaps.

    Args:
        heatmaps: (B, J, D, H, W) logits; axes z (depth), y (down), x (right).
        extent: edge of the volume; the grid spans [-extent/2, extent/2] on each axis.

    Returns:
        (B, J, 3) coordinates in the units of ``extent``.
    """
    B, J, D, H, W = heatmaps.shape
    prob = heatmaps.float().flatten(2).softmax(-1).view(B, J, D, H, W)
    axes = [torch.linspace(-extent / 2, extent / 2, n, device=heatmaps.device) for n in (D, H, W)]
    z = (prob.sum((3, 4)) * axes[0]).sum(-1)
    y = (prob.sum((2, 4)) * axes[1]).sum(-1)
    x = (prob.sum((2, 3)) * axes[2]).sum(-1)
    return torch.stack([x, y, z], -1)


class EpipolarImageModel(nn.Module):
    """ResNet + 3 deconvolutions + 1x1 conv to ``J * depth_bins`` channels + 3D soft-argmax."""

    kind = "image"
    input_kind = "image"

    def __init__(self, config: ImageModelConfig = ImageModelConfig(), n_joints: int = 17):
        super().__init__()
        if config.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32; got {config.image_size}")
        self.config, self.n_joints, self.input_window = config, n_joints, 1
        self.backbone = (_torchvision_backbone(config.layers, config.width)
                         or ResNetBackbone(config.layers, config.width))
        layers, cin = [], self.backbone.out_channels
        for _ in range(3):
            layers += [nn.ConvTranspose2d(cin, config.deconv, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(config.deconv), nn.ReLU()]
            cin = config.deconv
        self.deconv = nn.Sequential(*layers)
        self.final = nn.Conv2d(config.deconv, n_joints * config.depth_bins, 1)

    @property
    def heatmap_size(self) -> int:
        """Side of the heatmaps, pixels (image_size / 4)."""
        return self.config.image_size // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        S = self.config.image_size
        if x.ndim != 4 or x.shape[1:] != (3, S, S):
            raise ValueError(f"image model input must have shape (B, 3, {S}, {S}); "
                             f"got {tuple(x.shape)}")
        h = self.final(self.deconv(self.backbone(x)))
        B, _, H, W = h.shape
        pose = soft_argmax_3d(h.view(B, self.n_joints, self.config.depth_bins, H, W),
                              self.config.cube_m)
        return pose - pose[:, self.config.root:self.config.root + 1]
