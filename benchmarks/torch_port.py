"""The official Zero-DCE / Zero-DCE++ networks and losses in PyTorch, written
from SPEC (not copied), for side-by-side benchmarks only.

torch is optional: this module imports without it, and its functions raise
an ``ImportError`` saying how to install it. Weights come
from our converted params (``convert_official(..., flush=False)`` to keep the
denormals, as users of the official code have them), mapped back to PyTorch's
layout and the official curve sign.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from zerodce_jax.core import models

try:
  import torch
  import torch.nn.functional as F
  from torch import nn
except ImportError:  # the classes below exist only with torch
  torch = F = nn = None

__all__ = ["TorchDCENet", "from_params", "official_loss", "require_torch"]


def require_torch() -> None:
  """Raises a clear ``ImportError`` when PyTorch is not installed."""
  if torch is None:
    raise ImportError("the PyTorch port needs torch: pip install "
                      "torch==2.13.0 (the CPU build)")


if torch is not None:

  class _Sep(nn.Module):
    def __init__(self, cin, cout):
      super().__init__()
      self.depth_conv = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin)
      self.point_conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
      return self.point_conv(self.depth_conv(x))


  class TorchDCENet(nn.Module):
    """NCHW DCE-Net returning ``(enhanced, r)`` with the official sign r = -a."""

    def __init__(self, *, depth=7, width=32, iterations=8, separable=False,
                 scale_factor=1):
      super().__init__()
      self.iterations, self.separable = iterations, separable
      self.scale_factor = scale_factor
      self.sources = models.skip_sources(depth)
      out = 3 if separable else 3 * iterations
      layers = []
      for k, src in enumerate(self.sources, start=1):
        cin = 3 if src == (0,) else width * len(src)
        cout = out if k == depth else width
        layers.append(_Sep(cin, cout) if separable
                      else nn.Conv2d(cin, cout, 3, 1, 1))
      self.convs = nn.ModuleList(layers)

    def forward(self, x):
      s = self.scale_factor
      inp = x if s == 1 else F.interpolate(x, scale_factor=1 / s,
                                           mode="bilinear")
      acts = [inp]
      for k, (conv, src) in enumerate(zip(self.convs, self.sources), start=1):
        y = conv(torch.cat([acts[i] for i in src], 1))
        acts.append(torch.tanh(y) if k == len(self.convs) else F.relu(y))
      r = acts[-1]
      if s != 1:
        r = F.interpolate(r, scale_factor=s, mode="bilinear",
                          align_corners=True)
      for n in range(self.iterations):
        rn = r if self.separable else r[:, 3 * n:3 * n + 3]
        x = x + rn * (x * x - x)
      return x, r


def from_params(params: Any, arch: dict[str, Any], *,
                scale_factor: int = 1) -> TorchDCENet:
  """A ``TorchDCENet`` holding our params (HWIO -> OIHW, a -> r)."""
  require_torch()
  net = TorchDCENet(**arch, scale_factor=scale_factor)
  depth = arch["depth"]

  def oihw(k):
    return torch.from_numpy(np.ascontiguousarray(
        np.transpose(np.asarray(k, np.float32), (3, 2, 0, 1))))

  with torch.no_grad():
    for k, conv in enumerate(net.convs, start=1):
      sign = -1.0 if k == depth else 1.0
      p = params[f"conv{k}"]
      if arch["separable"]:
        conv.depth_conv.weight.copy_(oihw(p["depthwise"]["kernel"]))
        conv.depth_conv.bias.copy_(torch.from_numpy(np.asarray(
            p["depthwise"]["bias"], np.float32)))
        conv.point_conv.weight.copy_(sign * oihw(p["pointwise"]["kernel"]))
        conv.point_conv.bias.copy_(sign * torch.from_numpy(np.asarray(
            p["pointwise"]["bias"], np.float32)))
      else:
        conv.weight.copy_(sign * oihw(p["kernel"]))
        conv.bias.copy_(sign * torch.from_numpy(np.asarray(p["bias"],
                                                           np.float32)))
  return net


def official_loss(x, enhanced, r, *, tv_weight=200.0):
  """200*TV(r) + mean spa + 5*mean col + 10*mean exp, as the official script."""
  require_torch()
  b, _, h, w = r.shape
  tv = 2 * (torch.pow(r[:, :, 1:] - r[:, :, :-1], 2).sum() / ((h - 1) * w)
            + torch.pow(r[:, :, :, 1:] - r[:, :, :, :-1], 2).sum()
            / (h * (w - 1))) / b
  m = enhanced.mean((2, 3))
  drg, drb, dgb = ((m[:, 0] - m[:, 1])**2, (m[:, 0] - m[:, 2])**2,
                   (m[:, 1] - m[:, 2])**2)
  col = torch.sqrt(drg**2 + drb**2 + dgb**2 + 1e-8).mean()
  exp = ((F.avg_pool2d(enhanced.mean(1, keepdim=True), 16) - 0.6)**2).mean()
  po = F.avg_pool2d(x.mean(1, keepdim=True), 4)
  pe = F.avg_pool2d(enhanced.mean(1, keepdim=True), 4)

  def diffs(p):
    q = F.pad(p, (1, 1, 1, 1))
    c = q[:, :, 1:-1, 1:-1]
    return [c - q[:, :, 1:-1, :-2], c - q[:, :, 1:-1, 2:],
            c - q[:, :, :-2, 1:-1], c - q[:, :, 2:, 1:-1]]

  spa = sum((a - e)**2 for a, e in zip(diffs(po), diffs(pe))).mean()
  return tv_weight * tv + spa + 5 * col + 10 * exp
