"""A tiny U-Net (about 30 thousand parameters) that trains in seconds on a CPU."""

from __future__ import annotations

import torch
from torch import nn

from segdice._checks import SegDiceError, check_number

__all__ = ["TinyUNet"]


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class TinyUNet(nn.Module):
    """A U-Net with ``depth`` resolution levels and ``base_channels`` features at full resolution.

    Two 3x3 convolutions (batch norm, ReLU) per level, max pooling down, transposed convolutions up,
    skip connections by concatenation, and a 1x1 convolution to ``num_classes`` logits.

    Parameters
    ----------
    in_channels
        Input channels (1 for the demo's grey-level slices).
    num_classes
        Output channels (logits).
    base_channels
        Features at full resolution; doubled at every level down.
    depth
        Number of resolution levels (the input's height and width must be divisible by
        ``2 ** (depth - 1)``).

    Examples
    --------
    >>> net = TinyUNet(1, 2)
    >>> sum(p.numel() for p in net.parameters())
    29490
    >>> net(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 2, 32, 32])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, base_channels: int = 8, depth: int = 3):
        super().__init__()
        check_number("in_channels", in_channels, minimum=1, integer=True)
        check_number("num_classes", num_classes, minimum=1, integer=True)
        check_number("base_channels", base_channels, minimum=1, integer=True)
        check_number("depth", depth, minimum=1, maximum=8, integer=True)
        widths = [base_channels * 2**i for i in range(depth)]
        self.depth = depth
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.down.append(_block(c, w))
            c = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.merge.append(_block(2 * w, w))
            c = w
        self.head = nn.Conv2d(c, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, num_classes, H, W]`` for images ``[B, in_channels, H, W]``."""
        factor = 2 ** (self.depth - 1)
        if x.ndim != 4 or x.shape[-1] % factor or x.shape[-2] % factor:
            raise SegDiceError(
                f"x: got a tensor of shape {tuple(x.shape)}; expected [B, C, H, W] with H and W "
                f"divisible by {factor}"
            )
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else self.pool(x))
            skips.append(x)
        skips.pop()
        for up, merge in zip(self.up, self.merge, strict=True):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
