"""The CPU inference backbone: BatchNorm folded, then either one oneDNN Graph or the eager
rewrites (conv + activation fused into one oneDNN call, every other convolution on oneDNN and
the early layers run image by image), must compute what the model computes, for every
architecture train.py offers, and any rewrite that would not is dropped rather than used."""

from __future__ import annotations

import pytest
import torch
from torch import nn

ARCHS = ["mobilenet_v2", "mobilenet_v3_small", "resnet18", "efficientnet_b0"]


def _backbone(breedkit, arch: str) -> nn.Module:
    """A randomly initialised backbone whose BatchNorms carry real statistics, gathered on
    random images, and non-trivial affine parameters: folding them is not the identity it
    would be at init (mean 0, var 1, weight 1, bias 0), and, unlike made-up statistics, these
    keep its features depending on the input (else the features of any two images agree to
    1e-7, and a rewrite that mixed up the images of a batch would pass)."""
    from breedkit import models

    torch.manual_seed(0)
    backbone, _ = models.split_backbone_head(models.build_model(arch, 10, "none"), arch)
    for module in backbone.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # running statistics: the plain average over the batches
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    with torch.no_grad():
        backbone.train()
        for _ in range(2):
            backbone(torch.randn(8, 3, 64, 64))
    return backbone.eval()


def _close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Equal up to float reordering: 1e-4 of the largest feature (efficientnet_b0's reach 50)."""
    return bool((got - expected).abs().max() <= 1e-4 * max(1.0, float(expected.abs().max())))


def _post_op_convs(module: nn.Module, post_op: str | None = None) -> int:
    """How many ConvWithPostOp `module` holds (with `post_op`, if given)."""
    from breedkit.fast_backbone import ConvWithPostOp

    return sum(isinstance(m, ConvWithPostOp) and post_op in (None, m.post_op) for m in module.modules())


def _plain_conv_calls(fast: nn.Module) -> int:
    """Convolutions the rewritten graph(s) still hand to torch's own dispatch."""
    calls = 0
    for graph in (m for m in fast.modules() if isinstance(m, torch.fx.GraphModule)):
        modules = dict(graph.named_modules())
        calls += sum(n.op == "call_module" and isinstance(modules[n.target], nn.Conv2d) for n in graph.graph.nodes)
    return calls


def _eager(fast_backbone, backbone: nn.Module) -> nn.Module:
    """The eager rewrites, which run where oneDNN Graph cannot."""
    return fast_backbone.cpu_inference_backbone(backbone, torch.channels_last, graph_fusion=False)


@pytest.mark.parametrize("arch", ARCHS)
def test_the_rewritten_backbone_computes_the_same_features(breedkit, arch):
    from breedkit import fast_backbone

    backbone = _backbone(breedkit, arch)
    x = torch.randn(3, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = backbone(x)
        fast = _eager(fast_backbone, backbone)
        got = fast(x.contiguous(memory_format=torch.channels_last))
        alone = fast(x[:1].contiguous(memory_format=torch.channels_last))  # a batch of one
    assert (expected[0] - expected[1]).abs().max() > 0.1, "features that ignore the input prove nothing"
    assert isinstance(fast, fast_backbone.ImageByImage), "the early layers were not split off"
    assert _close(alone, expected[:1])
    assert _post_op_convs(fast) > 0, "no activation was fused: the rewrite found nothing to do"
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert _close(got, expected), float((got - expected).abs().max())
    assert any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())  # the model itself untouched


@pytest.mark.parametrize("arch", ARCHS)
def test_the_onednn_graph_computes_the_same_features_at_every_batch_size(breedkit, arch):
    """The graph is traced on a small probe and fused anew at each input shape it meets: the
    sizes extraction runs (a full batch, a short last one, one image) give the model's numbers."""
    from breedkit import fast_backbone

    backbone = _backbone(breedkit, arch)
    x = torch.randn(5, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = backbone(x)
        fast = fast_backbone.cpu_inference_backbone(backbone, torch.channels_last)
        got = [fast(x[:n].contiguous(memory_format=torch.channels_last)) for n in (4, 4, 4, 3, 1, 5)]
        fused = fast_backbone._fusion_groups(torch.jit.last_executed_optimized_graph())
    assert (expected[0] - expected[1]).abs().max() > 0.1, "features that ignore the input prove nothing"
    assert isinstance(fast, torch.jit.ScriptModule)
    assert fused > 0, "the graph ran unfused"
    for features in got:
        assert _close(features, expected[: len(features)]), float((features - expected[: len(features)]).abs().max())
    assert any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())  # the model itself untouched


def _partitions(block) -> list[list[str]]:
    """The aten ops of each oneDNN Graph partition in an executed TorchScript graph (they sit
    in the fused branch of a prim::If whose other branch falls back to the unfused graph)."""
    found = []
    for node in block.nodes():
        if node.kind() == "prim::oneDNNFusionGroup":
            found.append([n.kind() for n in node.g("Subgraph").nodes() if n.kind().startswith("aten::")])
        for inner in node.blocks():
            found += _partitions(inner)
    return found


def test_mobilenet_v2_fuses_each_expansion_with_its_depthwise_conv(breedkit):
    """Every one of the 52 convolutions runs inside a partition; in the 16 blocks that expand
    (all but the first), the 1x1 expansion + ReLU6 and the depthwise 3x3 + ReLU6 after it are
    one partition, i.e. one oneDNN primitive; each of the 10 shortcut sums runs inside its
    projection's partition."""
    from breedkit import fast_backbone

    fast = fast_backbone.cpu_inference_backbone(_backbone(breedkit, "mobilenet_v2"), torch.channels_last)
    with torch.inference_mode():
        for _ in range(3):
            fast(torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last))
    graph = torch.jit.last_executed_optimized_graph()
    partitions = _partitions(graph)
    assert sum(p.count("aten::_convolution") for p in partitions) == 52
    expand_then_depthwise = ["aten::_convolution", "aten::hardtanh", "aten::_convolution", "aten::hardtanh"]
    assert partitions.count(expand_then_depthwise) == 16
    assert partitions.count(["aten::_convolution", "aten::add"]) == 10
    assert not any(n.kind() in ("aten::_convolution", "aten::hardtanh", "aten::add") for n in graph.nodes())


@pytest.mark.filterwarnings("ignore:`torch.jit.set_fusion_strategy` is deprecated")
def test_a_graph_that_changes_the_numbers_is_dropped(breedkit, monkeypatch, capsys):
    """If the fused graph ever computed something else, the check catches it: the eager
    rewrites run, and the process-wide fusion switch is left as it was."""
    from breedkit import fast_backbone

    class Off(nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x) * 1.01

    freeze = torch.jit.freeze
    monkeypatch.setattr(torch.jit, "freeze", lambda module: Off(freeze(module)))
    torch.jit.enable_onednn_fusion(False)
    torchscripts_default = [("STATIC", 2), ("DYNAMIC", 10)]
    earlier = torch.jit.set_fusion_strategy(torchscripts_default)
    fast = fast_backbone.cpu_inference_backbone(_backbone(breedkit, "mobilenet_v2"), torch.channels_last)
    assert isinstance(fast, fast_backbone.ImageByImage)
    assert "without oneDNN Graph, on the eager rewrites (ValueError: outputs differ" in capsys.readouterr().err
    assert not torch.jit.onednn_fusion_enabled()
    assert torch.jit.set_fusion_strategy(earlier) == torchscripts_default


def test_a_torch_without_onednn_graph_runs_the_eager_rewrites(breedkit, monkeypatch, capsys):
    """A build whose executor fuses nothing (its switch does nothing) would run the traced
    graph op by op, slower than the eager rewrites: those run instead."""
    from breedkit import fast_backbone

    torch.jit.enable_onednn_fusion(False)
    monkeypatch.setattr(torch.jit, "enable_onednn_fusion", lambda enabled: None)
    fast = fast_backbone.cpu_inference_backbone(_backbone(breedkit, "mobilenet_v2"), torch.channels_last)
    assert isinstance(fast, fast_backbone.ImageByImage)
    assert "(ValueError: oneDNN Graph fused no layer" in capsys.readouterr().err


def test_mobilenet_v2_fuses_every_relu6_and_runs_every_conv_on_onednn(breedkit):
    """35 = the stem, the first block's depthwise conv, two per each of the 16 expanding
    blocks, and the last 1x1 conv: every ReLU6 in the network. The other 17 convolutions
    (each block's linear 1x1 projection) run on oneDNN with no post-op, so none is left to
    torch's dispatch, which sends a single-threaded 1x1 conv at batch < 16 to im2col."""
    from breedkit import fast_backbone

    backbone = _backbone(breedkit, "mobilenet_v2")
    assert sum(isinstance(m, nn.ReLU6) for m in backbone.modules()) == 35
    assert sum(isinstance(m, nn.Conv2d) for m in backbone.modules()) == 52
    fast = _eager(fast_backbone, backbone)
    assert _post_op_convs(fast, "hardtanh") == 35
    assert _post_op_convs(fast, "none") == 17
    assert _plain_conv_calls(fast) == 0
    assert not any(isinstance(m, nn.ReLU6) for m in fast.modules())


@pytest.mark.parametrize("arch", ARCHS)
def test_no_convolution_is_left_to_torchs_dispatch(breedkit, arch):
    from breedkit import fast_backbone

    fast = _eager(fast_backbone, _backbone(breedkit, arch))
    assert _plain_conv_calls(fast) == 0
    assert _post_op_convs(fast, "none") > 0


def test_a_fusion_that_changes_the_numbers_is_dropped(breedkit, monkeypatch, capsys):
    """If a post-op ever computed something else (here: ReLU6 given as a clamp to 0.5),
    the check on a small input catches it and the BN-folded module runs, unfused."""
    from breedkit import fast_backbone

    monkeypatch.setitem(fast_backbone._POST_OPS, nn.ReLU6, lambda m: ("hardtanh", [0.0, 0.5]))
    backbone = _backbone(breedkit, "mobilenet_v2")
    fast = _eager(fast_backbone, backbone)
    assert _post_op_convs(fast) == 0
    assert "convolutions as torch runs them, unfused (ValueError: outputs differ" in capsys.readouterr().err
    x = torch.randn(2, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        assert _close(fast(x), backbone(x))


def test_mobilenet_v2_runs_image_by_image_until_an_eighth_of_the_width(breedkit):
    """The cut falls in block 4, the first to bring the map to 1/8 of the input's width, right
    after its stride-2 depthwise conv (a block without a shortcut can be cut inside)."""
    from breedkit import fast_backbone

    fast = _eager(fast_backbone, _backbone(breedkit, "mobilenet_v2"))
    x = torch.randn(2, 3, 96, 96).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        early = fast.prefix(x[:1])
    assert early.shape == (1, 144, 12, 12)  # 96 / 8; block 4 expands 24 -> 144 channels
    assert list(fast.prefix.graph.nodes)[-2].target == "0_4_conv_1_0_with_post_op"


class _Shortcut(nn.Module):
    """a -> b -> a + b -> c (half the width) -> d: a cut may follow a, the sum, c or d, never
    b (a is still needed)."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 1)
        self.c, self.d = nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        a = self.a(x)
        return self.d(self.c(a + self.b(a)))


def test_a_cut_never_separates_a_shortcut_from_its_sum(breedkit):
    from breedkit import fast_backbone

    graph = torch.fx.symbolic_trace(_Shortcut().eval())
    assert [node.name for node in fast_backbone._cuts(graph.graph)] == ["a", "add", "c", "d"]
    split = fast_backbone.split_early_layers(graph, torch.randn(1, 3, 64, 64), stride=2)
    assert [node.name for node in split.prefix.graph.nodes] == ["x", "a", "b", "add", "c", "output"]
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(split(x), graph(x), atol=1e-6)


def test_a_split_that_changes_the_numbers_is_dropped(breedkit, monkeypatch, capsys):
    from breedkit import fast_backbone

    monkeypatch.setattr(fast_backbone.ImageByImage, "forward", lambda self, x: self.rest(self.prefix(x.flip(0))))
    backbone = _backbone(breedkit, "mobilenet_v2")
    fast = _eager(fast_backbone, backbone)
    assert not isinstance(fast, fast_backbone.ImageByImage)
    assert _post_op_convs(fast, "hardtanh") == 35  # the other rewrites stay
    assert "early layers on the whole batch (ValueError: outputs differ" in capsys.readouterr().err


class _DataDependent(nn.Module):
    """fx cannot trace a branch on a tensor's value."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.bn(self.conv(x))
        return y if y.sum() > 0 else -y


def test_an_untraceable_backbone_runs_as_it_is(breedkit, capsys):
    from breedkit import fast_backbone

    backbone = _DataDependent().eval()
    fast = fast_backbone.cpu_inference_backbone(backbone, torch.channels_last)
    assert fast is backbone
    assert "unfused backbone" in capsys.readouterr().err


def test_building_the_backbone_leaves_no_thread_running(breedkit):
    """Extraction forks its workers right after: a thread left running (fx's interpreter starts
    tqdm's monitor) would make the fork unsafe, and forked tuning trials refuse to start."""
    import threading

    from breedkit import fast_backbone

    before = set(threading.enumerate())
    fast_backbone.cpu_inference_backbone(_backbone(breedkit, "mobilenet_v2"), torch.channels_last)
    assert set(threading.enumerate()) <= before
