"""breedkit.models: every architecture re-headed and split, freezing, weights files."""

from __future__ import annotations

import pytest
import torch
from torch import nn

ARCHS_IN_CONFIG = (
    "resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large",
    "efficientnet_b0", "efficientnet_b1", "convnext_tiny",
)  # fmt: skip


def test_archs_match_the_host_config():
    from dogbreed.config.schema import ARCHS

    assert tuple(ARCHS) == ARCHS_IN_CONFIG


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHS_IN_CONFIG)
def test_head_of_backbone_is_the_model(breedkit, arch):
    """The feature cache trains `head` on `backbone` outputs; that must be the model itself."""
    from breedkit import models

    torch.manual_seed(0)
    model = models.build_model(arch, 7).eval()
    backbone, head = models.split_backbone_head(model, arch)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = backbone(x)
        assert features.dim() == 2
        assert torch.allclose(head(features), model(x), atol=1e-5)
    assert model(x).shape == (2, 7)
    # The head's parameters are the model's: training the head trains the artifact.
    head_params = {id(p) for p in head.parameters()}
    assert head_params == {id(p) for n, p in model.named_parameters() if n in models.head_parameter_names(model, arch)}
    assert sum(isinstance(m, nn.Linear) for m in head.modules()) == 1


def test_freeze_specs_and_batchnorm_modes(breedkit, imagenet_weights):
    from breedkit import models

    model = models.build_model("mobilenet_v2", 10, str(imagenet_weights))
    assert models.freeze(model, "mobilenet_v2", "backbone") == ["classifier.1.weight", "classifier.1.bias"]
    models.train_mode(model)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and not any(bn.training for bn in bns)  # a frozen BN never updates its statistics
    assert model.classifier[0].training  # the head's dropout does train

    trainable = models.freeze(model, "mobilenet_v2", "features.17")
    assert trainable[0].startswith("features.17.") and trainable[-1] == "classifier.1.bias"
    assert not any(n.startswith("features.16.") for n in trainable)
    models.train_mode(model)
    assert model.features[17].conv[3].training and not model.features[16].conv[3].training
    models.train_mode(model, freeze_bn_stats=True)
    assert not model.features[17].conv[3].training

    assert len(models.freeze(model, "mobilenet_v2", "none")) == len(list(model.parameters()))
    with pytest.raises(models.ModelError, match="matches no parameter"):
        models.freeze(model, "mobilenet_v2", "layer4")


def test_vendored_float16_weights_load_as_float32_imagenet_model(breedkit, imagenet_weights):
    from breedkit import models

    state = models.load_state_dict_file(imagenet_weights)
    assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())
    model = models.build_model("mobilenet_v2", 10, str(imagenet_weights))
    assert torch.equal(model.features[0][0].weight, state["features.0.0.weight"])
    assert model.classifier[1].out_features == 10
    assert models.weights_identity(str(imagenet_weights)) == (
        "sha256:36adfe08cb121addce32316179fe87a2d5f54ac24379517b7bf828e641343607"
    )


def test_weights_that_do_not_fit_are_a_clear_error(breedkit, imagenet_weights, tmp_path):
    from breedkit import models

    with pytest.raises(models.WeightsError, match="does not fit torchvision resnet18"):
        models.build_model("resnet18", 10, str(imagenet_weights))
    (tmp_path / "junk.pth").write_bytes(b"not a state dict")
    with pytest.raises(models.WeightsError, match="cannot read"):
        models.build_model("mobilenet_v2", 10, str(tmp_path / "junk.pth"))
    with pytest.raises(models.ModelError, match="unknown arch"):
        models.build_model("vgg16", 10)


def test_trained_model_round_trips_through_model_pth(breedkit, tmp_path):
    from breedkit import artifacts, models

    torch.manual_seed(3)
    model = models.build_model("resnet18", 5)
    ddp_style = {"module." + k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(ddp_style, tmp_path / "ddp.pth")
    loaded = models.load_trained("resnet18", 5, tmp_path / "ddp.pth")
    assert torch.allclose(loaded.fc.weight, model.fc.weight, atol=1e-3) and not loaded.training
    artifacts.save_state_dict(tmp_path / "model.pth", model)
    again = models.load_trained("resnet18", 5, tmp_path / "model.pth")
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


def test_param_group_names(breedkit):
    from breedkit.models import param_group_name

    head = {"classifier.1.weight"}
    assert param_group_name("classifier.1.weight", head) == "head"
    assert param_group_name("features.17.conv.0.0.weight", head) == "backbone.features.17"
    assert param_group_name("layer4.1.conv1.weight", head) == "backbone.layer4"
    assert param_group_name("conv1.weight", head) == "backbone.conv1"
