"""Compact in-tree copies of real vision architectures, initialised as torchvision/timm do.

The initialisation is the point: randomly initialised, MobileNetV3 gives outputs of ~1e-10 and
EfficientNet ~1e-13 (fan-out kaiming makes depthwise convs shrink the signal; small-std heads),
ShuffleNetV2 (PyTorch's default init, shrinking it layer by layer) gives its fc bias plus at
most ~1e-4 that depends on the input, and a zero-initialised ViT head gives 0 for every input. Any parity check of such a model passes an absolute tolerance whatever the
export did. Each class mirrors one real model's blocks and init; widths, depths and class counts
are cut so that each runs in milliseconds at 32-64 px. torchvision does not import here (CUDA
wheels), so the blocks are written out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NUM_CLASSES = 10


def _make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's channel rounding (never below 90% of ``value``)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _init_cnn(model: nn.Module, linear: str) -> None:
    """torchvision's CNN init: conv kaiming-normal fan_out, BN weight 1 / bias 0; ``linear`` is
    ``"normal"`` (MobileNetV3: std 0.01), ``"uniform"`` (EfficientNet: +-1/sqrt(out)) or
    ``"default"`` (ResNet: PyTorch's own)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            # a depthwise conv's fan_out is channels * k * k: its weights start tiny
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear == "normal":
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear == "uniform":
            bound = 1.0 / math.sqrt(m.out_features)
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


class ConvBNAct(nn.Sequential):
    """torchvision's Conv2dNormActivation: conv (no bias), BN, optional activation."""

    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, act=nn.ReLU, eps=1e-5):
        layers = [
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=eps, momentum=0.01 if eps == 1e-3 else 0.1),
        ]
        if act is not None:
            layers.append(act(inplace=True) if act in (nn.ReLU, nn.Hardswish, nn.SiLU) else act())
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """torchvision.ops.SqueezeExcitation: pool, 1x1 conv, act, 1x1 conv, gate."""

    def __init__(self, channels, squeeze, act=nn.ReLU, gate=nn.Sigmoid):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.act = act()
        self.gate = gate()

    def forward(self, x):
        scale = F.adaptive_avg_pool2d(x, 1)
        return x * self.gate(self.fc2(self.act(self.fc1(scale))))


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth ("row" mode): identity in eval."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty([x.shape[0]] + [1] * (x.ndim - 1), dtype=x.dtype).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


# -- MobileNetV3-small ---------------------------------------------------------------------


class _MobileBlock(nn.Module):
    def __init__(self, cin, kernel, expanded, cout, se, act, stride):
        super().__init__()
        act = nn.Hardswish if act == "HS" else nn.ReLU
        layers = []
        if expanded != cin:
            layers.append(ConvBNAct(cin, expanded, 1, act=act, eps=1e-3))
        layers.append(ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, act=act, eps=1e-3))
        if se:
            layers.append(SqueezeExcitation(expanded, _make_divisible(expanded // 4), gate=nn.Hardsigmoid))
        layers.append(ConvBNAct(expanded, cout, 1, act=None, eps=1e-3))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        out = self.block(x)
        return out + x if self.residual else out


class MobileNetV3Small(nn.Module):
    """torchvision ``mobilenet_v3_small``: hard-swish, hard-sigmoid SE, depthwise convs, BN eps
    1e-3, conv kaiming fan_out, Linear std 0.01. Simplified: 6 of its 11 bottlenecks (one per
    stride/kernel/SE kind, real expansion widths), 10 classes, classifier hidden 256 not 1024."""

    #: kernel, expanded, out, SE, activation, stride (torchvision's rows 1, 2, 3, 4, 7, 9)
    CONFIG = (
        (3, 16, 16, True, "RE", 2),
        (3, 72, 24, False, "RE", 2),
        (3, 88, 24, False, "RE", 1),
        (5, 96, 40, True, "HS", 2),
        (5, 120, 48, True, "HS", 1),
        (5, 288, 96, True, "HS", 2),
    )

    def __init__(self, num_classes: int = NUM_CLASSES, hidden: int = 256) -> None:
        super().__init__()
        layers = [ConvBNAct(3, 16, 3, 2, act=nn.Hardswish, eps=1e-3)]
        cin = 16
        for kernel, expanded, cout, se, act, stride in self.CONFIG:
            layers.append(_MobileBlock(cin, kernel, expanded, cout, se, act, stride))
            cin = cout
        layers.append(ConvBNAct(cin, 6 * cin, 1, act=nn.Hardswish, eps=1e-3))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(6 * cin, hidden),
            nn.Hardswish(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(hidden, num_classes),
        )
        _init_cnn(self, linear="normal")

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# -- EfficientNet-B0 -----------------------------------------------------------------------


class MBConv(nn.Module):
    """torchvision's MBConv: expand 1x1, depthwise kxk, SE (SiLU, sigmoid; squeeze = in/4),
    project 1x1, stochastic depth on the residual."""

    def __init__(self, cin, cout, expand, kernel, stride, drop):
        super().__init__()
        expanded = _make_divisible(cin * expand)
        layers = []
        if expanded != cin:
            layers.append(ConvBNAct(cin, expanded, 1, act=nn.SiLU))
        layers.append(ConvBNAct(expanded, expanded, kernel, stride, groups=expanded, act=nn.SiLU))
        layers.append(SqueezeExcitation(expanded, max(1, cin // 4), act=nn.SiLU))
        layers.append(ConvBNAct(expanded, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout
        self.stochastic_depth = StochasticDepth(drop)

    def forward(self, x):
        out = self.block(x)
        return self.stochastic_depth(out) + x if self.residual else out


class EfficientNetB0(nn.Module):
    """torchvision ``efficientnet_b0``: MBConv with SiLU and SE, stochastic depth 0.2 (off in
    eval), conv kaiming fan_out, Linear uniform +-1/sqrt(out). Simplified: width 0.5 and depth
    0.3 (8 of its 16 blocks; torchvision's width_mult/depth_mult), head 640 not 1280, 10 classes."""

    #: expand, kernel, stride, in, out, layers (B0 at width 1.0)
    CONFIG = (
        (1, 3, 1, 32, 16, 1),
        (6, 3, 2, 16, 24, 2),
        (6, 5, 2, 24, 40, 2),
        (6, 3, 2, 40, 80, 3),
        (6, 5, 1, 80, 112, 3),
        (6, 5, 2, 112, 192, 4),
        (6, 3, 1, 192, 320, 1),
    )

    def __init__(self, num_classes: int = NUM_CLASSES, width: float = 0.5, depth: float = 0.3) -> None:
        super().__init__()
        ch = lambda c: _make_divisible(c * width)  # noqa: E731
        total = sum(max(1, math.ceil(n * depth)) for *_, n in self.CONFIG)
        layers = [ConvBNAct(3, ch(32), 3, 2, act=nn.SiLU)]
        index = 0
        for expand, kernel, stride, cin, cout, n in self.CONFIG:
            for i in range(max(1, math.ceil(n * depth))):
                drop = 0.2 * index / total
                layers.append(
                    MBConv(
                        ch(cin if i == 0 else cout), ch(cout), expand, kernel, stride if i == 0 else 1, drop
                    )
                )
                index += 1
        head = 4 * ch(320)
        layers.append(ConvBNAct(ch(320), head, 1, act=nn.SiLU))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(head, num_classes))
        _init_cnn(self, linear="uniform")

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# -- ShuffleNetV2 --------------------------------------------------------------------------


def channel_shuffle(x, groups: int):
    batch, channels, height, width = x.size()
    x = x.view(batch, groups, channels // groups, height, width)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(batch, -1, height, width)


class _ShuffleBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        branch = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
                nn.BatchNorm2d(cin),
                nn.Conv2d(cin, branch, 1, bias=False),
                nn.BatchNorm2d(branch),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(
            nn.Conv2d(cin if stride > 1 else branch, branch, 1, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
            nn.Conv2d(branch, branch, 3, stride, 1, groups=branch, bias=False),
            nn.BatchNorm2d(branch),
            nn.Conv2d(branch, branch, 1, bias=False),
            nn.BatchNorm2d(branch),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """torchvision ``shufflenet_v2_x0_5``: channel split, two branches, channel shuffle, and
    PyTorch's default init (torchvision sets none). Simplified: stage repeats (2, 3, 2) not
    (4, 8, 4), last conv 256 not 1024, 10 classes."""

    def __init__(
        self, num_classes: int = NUM_CLASSES, repeats=(2, 3, 2), widths=(24, 48, 96, 192, 256)
    ) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True)
        )
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages = []
        cin = widths[0]
        for n, cout in zip(repeats, widths[1:4]):
            stages += [_ShuffleBlock(cin, cout, 2)] + [_ShuffleBlock(cout, cout, 1) for _ in range(n - 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.conv5 = nn.Sequential(
            nn.Conv2d(cin, widths[4], 1, bias=False), nn.BatchNorm2d(widths[4]), nn.ReLU(inplace=True)
        )
        self.fc = nn.Linear(widths[4], num_classes)

    def forward(self, x):
        x = self.conv5(self.stages(self.maxpool(self.conv1(x))))
        return self.fc(x.mean([2, 3]))


# -- ResNet-18 -----------------------------------------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class ResNet18(nn.Module):
    """torchvision ``resnet18``: 7x7 stem, max pool, 2 BasicBlocks per stage, conv kaiming
    fan_out (relu), BN 1/0, no zero-init residual (its default), default-init fc. Simplified:
    widths 16-32-64-128 not 64-128-256-512, 10 classes."""

    def __init__(self, num_classes: int = NUM_CLASSES, widths=(16, 32, 64, 128)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers = []
        cin = widths[0]
        for i, cout in enumerate(widths):
            layers.append(nn.Sequential(BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        _init_cnn(self, linear="default")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(self.layers(x)), 1))


# -- Swin ----------------------------------------------------------------------------------


def shifted_window_attention(x, qkv, proj, bias, window: int, heads: int, shift: int):
    """torchvision's ``shifted_window_attention`` (v1), with its padding and its Python
    branches on the padded size (no shift when the window covers the map)."""
    batch, height, width, channels = x.shape
    pad_r = (window - width % window) % window
    pad_b = (window - height % window) % window
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    _, pad_h, pad_w, _ = x.shape
    shift_h = 0 if window >= pad_h else shift
    shift_w = 0 if window >= pad_w else shift
    if shift_h + shift_w > 0:
        x = torch.roll(x, shifts=(-shift_h, -shift_w), dims=(1, 2))
    num_windows = (pad_h // window) * (pad_w // window)
    x = x.view(batch, pad_h // window, window, pad_w // window, window, channels)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch * num_windows, window * window, channels)

    q, k, v = qkv(x).reshape(x.size(0), x.size(1), 3, heads, channels // heads).permute(2, 0, 3, 1, 4)
    attn = (q * (channels // heads) ** -0.5).matmul(k.transpose(-2, -1)) + bias
    if shift_h + shift_w > 0:
        mask = x.new_zeros((pad_h, pad_w))
        h_slices = ((0, -window), (-window, -shift_h), (-shift_h, None))
        w_slices = ((0, -window), (-window, -shift_w), (-shift_w, None))
        count = 0
        for h in h_slices:
            for w in w_slices:
                mask[h[0] : h[1], w[0] : w[1]] = count
                count += 1
        mask = mask.view(pad_h // window, window, pad_w // window, window)
        mask = mask.permute(0, 2, 1, 3).reshape(num_windows, window * window)
        mask = mask.unsqueeze(1) - mask.unsqueeze(2)
        mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
        attn = attn.view(x.size(0) // num_windows, num_windows, heads, x.size(1), x.size(1))
        attn = (attn + mask.unsqueeze(1).unsqueeze(0)).view(-1, heads, x.size(1), x.size(1))
    x = F.softmax(attn, dim=-1).matmul(v).transpose(1, 2).reshape(x.size(0), x.size(1), channels)
    x = proj(x)

    x = x.view(batch, pad_h // window, pad_w // window, window, window, channels)
    x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, pad_h, pad_w, channels)
    if shift_h + shift_w > 0:
        x = torch.roll(x, shifts=(shift_h, shift_w), dims=(1, 2))
    return x[:, :height, :width, :].contiguous()


class ShiftedWindowAttention(nn.Module):
    """Window attention with a learned relative position bias table, as torchvision's."""

    def __init__(self, dim, window, heads, shift):
        super().__init__()
        self.window, self.heads, self.shift = window, heads, shift
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        coords = torch.flatten(
            torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")), 1
        )
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
        relative[:, :, 0] += window - 1
        relative[:, :, 1] += window - 1
        relative[:, :, 0] *= 2 * window - 1
        self.register_buffer("relative_position_index", relative.sum(-1).flatten())
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x):
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index].view(n, n, -1)
        bias = bias.permute(2, 0, 1).contiguous().unsqueeze(0)
        return shifted_window_attention(x, self.qkv, self.proj, bias, self.window, self.heads, self.shift)


class SwinBlock(nn.Module):
    def __init__(self, dim, heads, window, shift):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = ShiftedWindowAttention(dim, window, heads, shift)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.stochastic_depth = StochasticDepth(0.1)

    def forward(self, x):
        x = x + self.stochastic_depth(self.attn(self.norm1(x)))
        return x + self.stochastic_depth(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """torchvision's v1 patch merging: pad to even, 2x2 neighbours concatenated, LN, Linear."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        height, width, _ = x.shape[-3:]
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat(
            [x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :], x[..., 0::2, 1::2, :], x[..., 1::2, 1::2, :]], -1
        )
        return self.reduction(self.norm(x))


class SwinTiny(nn.Module):
    """torchvision ``swin_t``: 4x4 patch embed, window partition/reverse with a half-window
    shift on every second block, relative position bias table, patch merging; Linear and bias
    tables truncated-normal std 0.02. Simplified: 2 stages of 2 blocks (not 2-2-6-2), embed 32,
    heads 2-4, window 4 (not 7), 10 classes. Sizes that are multiples of patch*window=16 fill
    the first stage's windows; the second stage pads, as the real code does."""

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        embed: int = 32,
        depths=(2, 2),
        heads=(2, 4),
        window: int = 4,
        patch: int = 4,
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(3, embed, patch, patch)
        self.patch_norm = nn.LayerNorm(embed)
        stages = []
        dim = embed
        for i, (depth, head) in enumerate(zip(depths, heads)):
            if i:
                stages.append(PatchMerging(dim))
                dim *= 2
            stages += [SwinBlock(dim, head, window, 0 if j % 2 == 0 else window // 2) for j in range(depth)]
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.patch_norm(self.patch_embed(x).permute(0, 2, 3, 1))
        x = self.norm(self.stages(x)).permute(0, 3, 1, 2)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# -- ViT -----------------------------------------------------------------------------------


class VitBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        batch, tokens, dim = x.shape
        qkv = (
            self.qkv(self.norm1(x))
            .reshape(batch, tokens, 3, self.heads, dim // self.heads)
            .permute(2, 0, 3, 1, 4)
        )
        attn = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(attn.transpose(1, 2).reshape(batch, tokens, dim))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    """timm ``VisionTransformer`` with ``dynamic_img_size=True``: patch embed conv, class token,
    absolute position embedding resampled bicubically to the image's grid, pre-norm blocks,
    final LN, class-token head; Linear truncated-normal std 0.02, position embedding std 0.02,
    class token std 1e-6. ``zero_head=True`` zero-initialises the head as torchvision's
    ``vit_b_16`` (and timm's ``weight_init="jax"``) do: every input then gives the same output.
    Simplified: patch 8, dim 64, 4 blocks of 4 heads, reference grid 4x4 (32 px), 10 classes."""

    def __init__(
        self,
        num_classes: int = NUM_CLASSES,
        zero_head: bool = True,
        patch: int = 8,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        grid: int = 4,
    ) -> None:
        super().__init__()
        self.grid = grid
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
        self.blocks = nn.Sequential(*[VitBlock(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        if zero_head:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x):
        x = self.patch_embed(x)
        batch, dim, height, width = x.shape
        pos = self.pos_embed[:, 1:].reshape(1, self.grid, self.grid, dim).permute(0, 3, 1, 2)
        pos = F.interpolate(pos, size=(height, width), mode="bicubic", align_corners=False)
        pos = pos.permute(0, 2, 3, 1).reshape(1, height * width, dim)
        x = x.flatten(2).transpose(1, 2) + pos
        cls = self.cls_token.expand(batch, -1, -1) + self.pos_embed[:, :1]
        x = self.norm(self.blocks(torch.cat([cls, x], dim=1)))
        return self.head(x[:, 0])
