"""Shapes, gradients and input checks of the lifters and the image model."""
import numpy as np
import pytest
import torch

from epiflow.models.image_model import (EpipolarImageModel, ImageModelConfig, ResNetBackbone,
                                        soft_argmax_3d)
from epiflow.models.lifters import (MLPConfig, ResidualMLPLifter, TemporalTransformerLifter,
                                    TransformerConfig)


def _grads_finite_and_nonzero(model):
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    return sum(float(g.abs().sum()) for g in grads)


class TestResidualMLPLifter:
    def test_shapes_and_backward(self):
        model = ResidualMLPLifter(MLPConfig(hidden=32, blocks=2), n_joints=17)
        assert (model.input_window, model.n_joints, model.input_kind) == (1, 17, "keypoints")
        x = torch.randn(8, 17, 2)
        y = model(x)
        assert y.shape == (8, 17, 3)
        assert model(x[:, None]).shape == (8, 17, 3)  # (B, 1, J, 2) too
        y.square().mean().backward()
        assert _grads_finite_and_nonzero(model) > 0

    @pytest.mark.parametrize("shape", [(8, 16, 2), (8, 17, 3), (8, 2, 17, 2)])
    def test_wrong_input_shape(self, shape):
        model = ResidualMLPLifter(MLPConfig(hidden=16, blocks=1))
        with pytest.raises(ValueError, match=r"\(B, 1, 17, 2\) or \(B, 17, 2\)"):
            model(torch.zeros(shape))


    def test_window_reads_the_frames_around_the_centre(self):
        torch.manual_seed(0)
        model = ResidualMLPLifter(MLPConfig(hidden=32, blocks=1, dropout=0.0, window=5)).eval()
        assert model.input_window == 5
        x = torch.randn(3, 5, 17, 2)
        y = model(x)
        assert y.shape == (3, 17, 3)
        moved = x.clone()
        moved[:, 0] += 0.5                                   # only the first frame changes
        assert (model(moved) - y).abs().max() > 1e-3          # and the centre's pose follows
        with pytest.raises(ValueError, match=r"\(B, 5, 17, 2\)"):
            model(x[:, 0])                                  # one frame is not a window

    def test_a_sequence_shorter_than_the_window_names_the_per_frame_mlp(self):
        from epiflow.models.predict import check_sequence
        model = ResidualMLPLifter(MLPConfig(hidden=8, blocks=1, window=5))
        kp = np.ones((3, 17, 3))
        with pytest.raises(ValueError, match=r"3 frames, fewer than the 5-frame window") as err:
            check_sequence(model, kp, "clip")
        assert "model.mlp.window = 1" in str(err.value)       # 'mlp' alone now reads windows too
        check_sequence(model, np.ones((5, 17, 3)), "clip")   # long enough: no error

    @pytest.mark.parametrize("window", [0, 4])
    def test_window_must_be_odd(self, window):
        with pytest.raises(ValueError, match="model.mlp.window"):
            MLPConfig(window=window)


class TestTemporalTransformerLifter:
    def test_shapes_and_backward(self):
        cfg = TransformerConfig(window=9, dim=16, depth=1, heads=2)
        model = TemporalTransformerLifter(cfg, n_joints=17)
        assert model.input_window == 9
        y = model(torch.randn(4, 9, 17, 2))
        assert y.shape == (4, 17, 3)
        y.square().mean().backward()
        assert _grads_finite_and_nonzero(model) > 0

    def test_reads_the_whole_window(self):
        torch.manual_seed(0)
        model = TemporalTransformerLifter(TransformerConfig(window=5, dim=16, depth=1, heads=2,
                                                            dropout=0.0)).eval()
        x = torch.randn(2, 5, 17, 2)
        x2 = x.clone()
        x2[:, 0] += 1.0  # change only the first (non-centre) frame
        with torch.no_grad():
            assert float((model(x) - model(x2)).abs().max()) > 1e-4

    def test_bad_settings(self):
        with pytest.raises(ValueError, match="odd"):
            TemporalTransformerLifter(TransformerConfig(window=4))
        with pytest.raises(ValueError, match="divisible"):
            TemporalTransformerLifter(TransformerConfig(dim=10, heads=4))
        model = TemporalTransformerLifter(TransformerConfig(window=5, dim=16, heads=2))
        with pytest.raises(ValueError, match=r"\(B, 5, 17, 2\)"):
            model(torch.zeros(2, 3, 17, 2))


class TestImageModel:
    def test_shapes_backward_and_root(self):
        model = EpipolarImageModel(ImageModelConfig(image_size=64, width=8, deconv=16,
                                                    depth_bins=8), n_joints=17)
        assert model.heatmap_size == 16 and model.input_kind == "image"
        y = model(torch.rand(2, 3, 64, 64))
        assert y.shape == (2, 17, 3)
        assert float(y[:, 0].detach().abs().max()) == 0.0  # root-relative
        assert float(y.detach().abs().max()) <= 2.0  # differences of points in the 2 m cube
        y[:, 1:].square().mean().backward()
        assert _grads_finite_and_nonzero(model) > 0

    def test_wrong_input(self):
        model = EpipolarImageModel(ImageModelConfig(image_size=64, width=8, deconv=8, depth_bins=4))
        with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
            model(torch.rand(2, 3, 32, 32))
        with pytest.raises(ValueError, match="multiple of 32"):
            EpipolarImageModel(ImageModelConfig(image_size=48))

    def test_soft_argmax_of_a_peak(self):
        D, H, W = 5, 9, 7
        heat = torch.full((1, 1, D, H, W), -1e4)
        heat[0, 0, 1, 6, 2] = 0.0  # z index 1, y index 6, x index 2
        xyz = soft_argmax_3d(heat, extent=2.0)[0, 0]
        expected = [-1 + 2 * 2 / (W - 1), -1 + 2 * 6 / (H - 1), -1 + 2 * 1 / (D - 1)]
        np.testing.assert_allclose(xyz.numpy(), expected, atol=1e-6)

    def test_backbone_layout_is_torchvisions(self):
        net = ResNetBackbone((2, 2, 2, 2), 64)
        names = set(dict(net.named_parameters()))
        # a few of torchvision's resnet18 parameter names (fc excluded)
        assert {"conv1.weight", "bn1.weight", "layer1.0.conv1.weight",
                "layer2.0.downsample.0.weight", "layer4.1.bn2.bias"} <= names
        n_params = sum(p.numel() for p in net.parameters())
        assert n_params == 11_176_512  # torchvision's resnet18 without its fc layer
        assert net(torch.rand(1, 3, 64, 64)).shape == (1, 512, 2, 2)
