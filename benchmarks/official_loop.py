"""What a user of the official PyTorch code waits for: its test script's
semantics, as one process per run, for ``benchmarks/cli_latency.py``.

Written from SPEC section 6 (not copied from the official code, which is
CC BY-NC): import torch, build DCE-Net with the official parameter names so
that the official snapshot loads as it is (``load_state_dict`` of
``torch.load(..., weights_only=True)``: no code runs from the file), read
the image with PIL, ``/ 255``, one forward pass without gradients, then
clamp, ``* 255``, round and save under the input's name and format (what
``torchvision.utils.save_image`` does). Zero-DCE++ crops the input to a multiple of the scale factor, down-
scales it (bilinear, ``align_corners=False``), up-scales the map
(``align_corners=True``), as the official test script. Denormals are
flushed and the threads set to the machine's cores: the official code at
its fastest on a CPU (SPEC: the official Zero-DCE weights are a quarter
denormal floats).

This script imports torch, NumPy and Pillow only, so its start-up is the
official script's, not this project's::

  python benchmarks/official_loop.py --arch zerodce \\
      --weights ../shared/weights/zerodce_official_epoch99.pth photo.jpg -o out/
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def build(arch: str, nn, torch, F):
  """DCE-Net (``zerodce``) or its depthwise-separable variant
  (``zerodce++``) with the official state_dict names ``e_conv1..7``."""

  # torch_port._Sep's layers again: this script imports nothing of the
  # project (module doc), so it cannot borrow them
  class Sep(nn.Module):
    def __init__(self, cin, cout):
      super().__init__()
      self.depth_conv = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin)
      self.point_conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
      return self.point_conv(self.depth_conv(x))

  separable = arch == "zerodce++"
  conv = Sep if separable else (lambda i, o: nn.Conv2d(i, o, 3, 1, 1))
  out = 3 if separable else 24

  class Net(nn.Module):
    def __init__(self):
      super().__init__()
      self.e_conv1 = conv(3, 32)
      self.e_conv2 = conv(32, 32)
      self.e_conv3 = conv(32, 32)
      self.e_conv4 = conv(32, 32)
      self.e_conv5 = conv(64, 32)
      self.e_conv6 = conv(64, 32)
      self.e_conv7 = conv(64, out)

    def forward(self, x, scale):
      small = x if scale == 1 else F.interpolate(x, scale_factor=1 / scale,
                                                 mode="bilinear")
      x1 = F.relu(self.e_conv1(small))
      x2 = F.relu(self.e_conv2(x1))
      x3 = F.relu(self.e_conv3(x2))
      x4 = F.relu(self.e_conv4(x3))
      x5 = F.relu(self.e_conv5(torch.cat([x3, x4], 1)))
      x6 = F.relu(self.e_conv6(torch.cat([x2, x5], 1)))
      r = torch.tanh(self.e_conv7(torch.cat([x1, x6], 1)))
      if scale != 1:
        r = F.interpolate(r, scale_factor=scale, mode="bilinear",
                          align_corners=True)
      for n in range(8):
        rn = r if separable else r[:, 3 * n:3 * n + 3]
        x = x + rn * (x * x - x)
      return x

  return Net()


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  ap.add_argument("images", nargs="+")
  ap.add_argument("--arch", choices=("zerodce", "zerodce++"),
                  default="zerodce")
  ap.add_argument("--weights", required=True, help="an official Epoch99.pth")
  ap.add_argument("--scale-factor", type=int, default=12)
  ap.add_argument("-o", "--output", default="official_out")
  ap.add_argument("--threads", type=int, default=os.cpu_count())
  args = ap.parse_args(argv)
  t0 = time.perf_counter()
  import numpy as np  # noqa: PLC0415 - timed as the script's start-up
  import torch  # noqa: PLC0415
  import torch.nn.functional as F  # noqa: PLC0415
  from PIL import Image  # noqa: PLC0415
  from torch import nn  # noqa: PLC0415
  torch.set_num_threads(args.threads)
  torch.set_flush_denormal(True)
  net = build(args.arch, nn, torch, F)
  state = torch.load(args.weights, map_location="cpu", weights_only=True)
  net.load_state_dict(state)
  net.eval()
  scale = args.scale_factor if args.arch == "zerodce++" else 1
  os.makedirs(args.output, exist_ok=True)
  t_ready = time.perf_counter()
  for path in args.images:
    x = np.asarray(Image.open(path).convert("RGB")) / 255.0
    if scale != 1:
      h, w = x.shape[0] // scale * scale, x.shape[1] // scale * scale
      x = x[:h, :w]
    x = torch.from_numpy(x).float().permute(2, 0, 1).unsqueeze(0)
    with torch.no_grad():
      y = net(x, scale)
    y = (y[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8)
    name = os.path.basename(path)  # save_image: the format from the name
    Image.fromarray(y.permute(1, 2, 0).numpy()).save(
        os.path.join(args.output, name))
  print(f"official {args.arch}: {len(args.images)} image(s), start-up "
        f"{t_ready - t0:.2f} s, enhance+save "
        f"{time.perf_counter() - t_ready:.2f} s", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
