"""The frozen backbone rewritten for fast inference on CPU, computing the same function.

First, each BatchNorm is folded into the convolution before it (torch.fx's own `fuse`, on a
copy: the model's own parameters are untouched). Then, by preference, oneDNN Graph:

The folded backbone is traced and frozen for TorchScript with oneDNN Graph fusion on
(`torch.jit.enable_onednn_fusion`), and oneDNN runs whole chains of layers as one primitive.
Each inverted-residual block's 1x1 expansion + ReLU6 is fused with the depthwise 3x3 + ReLU6
after it (oneDNN's depthwise post-op: the expanded map, 6x the block's input, is made and
consumed tile by tile while in cache instead of going out to memory and back), and each
projection with its shortcut's sum. On this project's 2-core CPU, one thread, batch 4, side by
side: mobilenet_v2 10.6-10.7 ms per image against 14.4-17.5 for the eager rewrites below,
mobilenet_v3_small 2.9 against 4.4-4.6, efficientnet_b0 23-27 against 25-29.5, resnet18 48-50
against 52-53; extraction of 1,200 photos in 2 workers 1.23-1.25x (bench_feature_cache.py,
the two ways side by side in one run). It costs ~0.5 s to build and check here, and ~0.5 s in
each process the first time it meets an input shape of 224 pixels (the executor profiles one
run, then fuses), so on about 400 photos or fewer it is no faster. TorchScript is deprecated in favour of torch.compile
(whose freezing pass reached only plain eager speed here, after a 14 s compile) and torch warns
so; those warnings are silenced. Where it fails (torch without TorchScript, a build without
oneDNN Graph, a graph it fuses nothing of, different numbers), the eager rewrites run instead.

The eager rewrites, on the torch.fx copy:
1. (the BatchNorm fold above);
2. a convolution whose only use is an activation oneDNN can apply as a post-op (ReLU,
   ReLU6/Hardtanh, SiLU, Hardswish, Hardsigmoid) becomes one oneDNN call that does both
   (`torch.ops.mkldnn._convolution_pointwise`, what TorchInductor's CPU freezing pass emits).
   The activation then runs on each tile while it is still in cache instead of as a second
   pass over memory: mobilenet_v2's 35 ReLU6s cost ~10% of its forward pass on this project's
   2-core CPU, and the rewrite ran it 1.14x faster on one thread (side by side, batch 8);
3. every other convolution becomes the same oneDNN call with no post-op. Left to torch, a
   1x1 convolution on one thread with fewer than 16 images goes to its im2col + matmul
   path instead ("THNN is faster when single-threaded", aten's ConvUtils), which is what
   extraction's single-threaded workers run at batch 4: mobilenet_v2's 17 linear
   bottleneck projections took 35% of its forward pass there, and on oneDNN the whole
   backbone ran 1.05-1.10x faster (94 -> 99-103 images/s, one thread, batch 4).
Each rewritten convolution keeps its weights in oneDNN's layout per input shape (2-3% more).
Then the graph is cut in two where the feature map first reaches 1/8 of the input's width
(and one tensor crosses the cut): the part before runs image by image, the rest on the whole
batch (ImageByImage). The early layers have the largest activations and the fewest weights
to reuse across a batch: mobilenet_v2's expanded 112x112 maps are ~5 MB per image, 19 MB at
batch 4, beyond what two workers share of this CPU's 32 MB L3. Split so, the backbone ran
1.04-1.06x faster on one thread and with two processes side by side.
torch.compile with freezing reached the same speed as plain eager here after a 14 s
compile, so these rewrites are all of it that pays on a CPU, without the compiler.

Every rewrite is checked on a small input against the BN-folded module and dropped, with a
line on stderr, if it cannot trace, is missing from this build, or disagrees beyond float
tolerance (1e-4 of the largest feature): a slower backbone is acceptable, a different one
is not.
"""

from __future__ import annotations

import copy
import sys
import warnings

import torch
from torch import fx, nn

# Per activation module: (oneDNN post-op name, its scalars). Any other activation stays a
# separate module after its convolution.
_POST_OPS = {
    nn.ReLU: lambda m: ("relu", []),
    nn.ReLU6: lambda m: ("hardtanh", [0.0, 6.0]),
    nn.Hardtanh: lambda m: ("hardtanh", [float(m.min_val), float(m.max_val)]),
    nn.SiLU: lambda m: ("swish", []),
    nn.Hardswish: lambda m: ("hardswish", []),
    nn.Hardsigmoid: lambda m: ("hardsigmoid", []),
}
_TOLERANCE = 1e-4  # relative to the largest feature: the rewrites reorder float sums (~1e-5 seen)


class ConvWithPostOp(nn.Module):
    """`activation(conv(x))` as one oneDNN convolution with a post-op, or `conv(x)` on oneDNN
    with post_op "none" (inference only)."""

    def __init__(self, conv: nn.Conv2d, post_op: str, scalars: list[float]) -> None:
        super().__init__()
        self.conv = conv
        self.post_op = post_op
        self.scalars = scalars
        self._packed: dict[torch.Size, torch.Tensor] = {}  # input shape -> weights in oneDNN's layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        weight = self._packed.get(x.shape)
        if weight is None:
            # Reordered once per input shape (extraction sees two: full and last batch), not
            # on every call as plain weights are: 2-3% of extraction here, the same numbers.
            weight = torch._C._nn.mkldnn_reorder_conv2d_weight(
                c.weight.detach().to_mkldnn(), c.padding, c.stride, c.dilation, c.groups, list(x.shape)
            )
            self._packed[x.shape] = weight
        return torch.ops.mkldnn._convolution_pointwise(
            x, weight, c.bias, c.padding, c.stride, c.dilation, c.groups, self.post_op, self.scalars, ""
        )


def _fusable(conv: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and conv.padding_mode == "zeros"
        and not isinstance(conv.padding, str)  # 'same'/'valid': the fused op takes numbers
        and conv.weight.dtype == torch.float32
    )


def fuse_conv_activations(graph: fx.GraphModule) -> int:
    """Rewrite `graph` in place: each conv -> activation pair becomes a ConvWithPostOp.
    Returns how many pairs were fused."""
    modules = dict(graph.named_modules())
    fused = 0
    for node in list(graph.graph.nodes):
        if node.op != "call_module" or not _fusable(modules[node.target]) or len(node.users) != 1:
            continue
        (user,) = node.users
        activation = modules.get(user.target) if user.op == "call_module" else None
        post_op = _POST_OPS.get(type(activation))
        if post_op is None or user.args != (node,):
            continue
        name = f"{node.target.replace('.', '_')}_with_post_op"
        graph.add_submodule(name, ConvWithPostOp(modules[node.target], *post_op(activation)))
        with graph.graph.inserting_after(user):
            replacement = graph.graph.call_module(name, node.args)
        user.replace_all_uses_with(replacement)
        graph.graph.erase_node(user)
        graph.graph.erase_node(node)
        fused += 1
    graph.graph.lint()
    graph.delete_all_unused_submodules()  # the replaced activations (each conv lives on in its pair)
    graph.recompile()
    return fused


def convolutions_on_onednn(graph: fx.GraphModule) -> int:
    """Rewrite `graph` in place: each convolution not already fused with its activation runs
    on oneDNN too (a ConvWithPostOp with post-op "none"; module docstring, rewrite 3).
    Returns how many were rewritten."""
    modules = dict(graph.named_modules())
    rewritten = 0
    for node in graph.graph.nodes:
        if node.op == "call_module" and _fusable(modules[node.target]):
            name = f"{node.target.replace('.', '_')}_on_onednn"
            graph.add_submodule(name, ConvWithPostOp(modules[node.target], "none", []))
            node.target = name
            rewritten += 1
    graph.delete_all_unused_submodules()
    graph.recompile()
    return rewritten


class ImageByImage(nn.Module):
    """`rest(prefix(x))`, with `prefix` run on one image at a time (module docstring)."""

    def __init__(self, prefix: fx.GraphModule, rest: fx.GraphModule) -> None:
        super().__init__()
        self.prefix, self.rest = prefix, rest

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) == 1:
            return self.rest(self.prefix(x))
        return self.rest(torch.cat([self.prefix(image) for image in x.split(1)]))


def _cuts(graph: fx.Graph) -> list[fx.Node]:
    """The nodes after which their own output is the only value the rest of the graph reads."""
    nodes = list(graph.nodes)
    position = {node: i for i, node in enumerate(nodes)}
    cuts, furthest_read = [], 0  # the last position any node before the current one is read at
    for i, node in enumerate(nodes):
        if furthest_read <= i and node.users and node.op in ("call_module", "call_function", "call_method"):
            cuts.append(node)
        furthest_read = max([furthest_read, *(position[user] for user in node.users)])
    return cuts


def _split_at(graph: fx.GraphModule, cut: fx.Node) -> ImageByImage:
    """`graph` as the part up to and including `cut`, and the part after it."""
    first, second = fx.Graph(), fx.Graph()
    into_first: dict[fx.Node, fx.Node] = {}
    into_second: dict[fx.Node, fx.Node] = {}
    for node in graph.graph.nodes:
        if cut in into_second:
            into_second[node] = second.node_copy(node, into_second.__getitem__)
            continue
        into_first[node] = first.node_copy(node, into_first.__getitem__)
        if node is cut:
            first.output(into_first[node])
            into_second[cut] = second.placeholder("x")
    return ImageByImage(fx.GraphModule(graph, first), fx.GraphModule(graph, second))


def _outputs_at(graph: fx.GraphModule, nodes: list[fx.Node], x: torch.Tensor) -> list:
    """What each of `nodes` computes when `graph` runs on `x` (one run of a copy whose output
    is those values; fx's ShapeProp would do it too, but its interpreter starts tqdm's monitor
    thread, and a thread left running makes every later fork of the process unsafe)."""
    copy_of: dict[fx.Node, fx.Node] = {}
    probe = fx.Graph()
    for node in graph.graph.nodes:
        if node.op != "output":
            copy_of[node] = probe.node_copy(node, copy_of.__getitem__)
    probe.output(tuple(copy_of[node] for node in nodes))
    with torch.inference_mode():
        return list(fx.GraphModule(graph, probe)(x))


def split_early_layers(graph: fx.GraphModule, probe: torch.Tensor, stride: int = 8) -> nn.Module:
    """`graph` as an ImageByImage cut where its feature map first gets `stride` times narrower
    than `probe` (an input it is run on to see the shapes), or `graph` itself when it has no
    such cut before its end."""
    cuts = _cuts(graph.graph)
    for node, value in zip(cuts, _outputs_at(graph, cuts, probe), strict=True):
        if isinstance(value, torch.Tensor) and value.dim() == 4 and value.shape[-1] * stride <= probe.shape[-1]:
            return _split_at(graph, node) if node.next.op != "output" else graph
    return graph


def _probe(memory_format: torch.memory_format) -> torch.Tensor:
    """A small input the rewrites are checked on (two images: ImageByImage's loop runs)."""
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    return x.contiguous(memory_format=memory_format)


def _check(rewritten: nn.Module, x: torch.Tensor, expected: torch.Tensor) -> None:
    """Raise unless `rewritten(x)` is `expected` up to float reordering."""
    with torch.inference_mode():
        difference = float((expected - rewritten(x)).abs().max())
    if difference > _TOLERANCE * max(1.0, float(expected.abs().max())):
        raise ValueError(f"outputs differ by more than {_TOLERANCE:g} of the largest")


def _say(message: str) -> None:
    print(f"feature cache: {message}"[:300], file=sys.stderr, flush=True)


# The graph is fused for each exact input shape it meets (STATIC) up to 8 shapes, where
# TorchScript's default is 2 and then one graph for any shape (DYNAMIC): with the check's
# shape and one more taken, extraction's full batch ran fused for any shape, 1.26x slower
# (13.1 against 10.4 ms per image, mobilenet_v2, one thread). Extraction meets one more
# (feature_cache pads a short last batch to the full size).
_FUSION_STRATEGY = [("STATIC", 8), ("DYNAMIC", 8)]
_DEPRECATED = r"`torch\.jit\.\w+` is deprecated"  # TorchScript's Future/DeprecationWarnings (module docstring)


def _fusion_groups(graph: torch.Graph) -> int:
    """How many oneDNN Graph partitions `graph` (an executed TorchScript graph) runs."""
    groups = 0
    for node in graph.nodes():
        groups += node.kind() == "prim::oneDNNFusionGroup"
        groups += sum(_fusion_groups(block) for block in node.blocks())
    return groups


def onednn_graph(folded: nn.Module, x: torch.Tensor, expected: torch.Tensor) -> torch.jit.ScriptModule:
    """`folded` traced, frozen and run by TorchScript with oneDNN Graph fusion (module
    docstring), checked against `expected` (what `folded` gives for `x`) once fused for
    `x`'s shape (tests check the other shapes extraction meets). Raises if any of that fails
    or nothing was fused, and the process-wide fusion switch and strategy are then left as
    they were; once this returns they stay set, as the executor fuses anew for each new
    input shape (in each forked worker too)."""
    was_on, strategy = torch.jit.onednn_fusion_enabled(), None
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_DEPRECATED)
            torch.jit.enable_onednn_fusion(True)
            strategy = torch.jit.set_fusion_strategy(_FUSION_STRATEGY)
            with torch.no_grad():
                compiled = torch.jit.freeze(torch.jit.trace(folded.eval(), x, check_trace=False))
        for _ in range(3):  # the first run profiles the graph, the next ones run it fused
            _check(compiled, x, expected)
        if not _fusion_groups(torch.jit.last_executed_optimized_graph()):
            raise ValueError("oneDNN Graph fused no layer (not in this build of torch?)")
    except BaseException:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_DEPRECATED)
            torch.jit.enable_onednn_fusion(was_on)
            if strategy is not None:
                torch.jit.set_fusion_strategy(strategy)
        raise
    return compiled


def cpu_inference_backbone(backbone: nn.Module, memory_format: torch.memory_format, *, graph_fusion: bool = True) -> nn.Module:
    """`backbone` (in eval mode) with BN folded, then run as one oneDNN Graph (unless
    `graph_fusion` is False) or else with conv+activation fused and every convolution on
    oneDNN, laid out in `memory_format`; each step kept only where it checks out (module
    docstring)."""
    backbone = backbone.eval()
    try:
        from torch.fx.experimental.optimization import fuse

        folded = fuse(backbone).to(memory_format=memory_format)  # fuse() works on a copy
    except Exception as exc:  # noqa: BLE001 - any failure (an untraceable model) means: run it as it is
        _say(f"unfused backbone ({type(exc).__name__}: {exc})")
        return backbone.to(memory_format=memory_format)
    if not hasattr(torch.ops.mkldnn, "_convolution_pointwise") or not torch.backends.mkldnn.is_available():
        return folded
    # Every rewrite is checked against the folded module's output, computed once.
    x = _probe(memory_format)
    with torch.inference_mode():
        expected = folded(x)
    if graph_fusion:
        try:
            return onednn_graph(folded, x, expected)
        except Exception as exc:  # noqa: BLE001 - the eager rewrites below compute the same
            _say(f"backbone without oneDNN Graph, on the eager rewrites ({type(exc).__name__}: {exc})")
    try:
        fused = copy.deepcopy(folded)
        if fuse_conv_activations(fused) + convolutions_on_onednn(fused):
            _check(fused, x, expected)
    except Exception as exc:  # noqa: BLE001 - same as above: the folded module is still right
        _say(f"convolutions as torch runs them, unfused ({type(exc).__name__}: {exc})")
        return folded
    try:
        split = split_early_layers(fused, x)
        if split is not fused:
            _check(split, x, expected)
    except Exception as exc:  # noqa: BLE001 - the unsplit module is still right
        _say(f"early layers on the whole batch ({type(exc).__name__}: {exc})")
        return fused
    return split
