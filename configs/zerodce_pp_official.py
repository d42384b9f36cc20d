"""Zero-DCE++ as its official training script runs it.

    zerodce train --config configs/zerodce_pp_official.py --workdir runs/pp \
        --config.data.path=../shared/train_images

512x512 images, TV weight 1600, 100 epochs, scale factor 1 in training (the
official test script enhances at scale 12: `zerodce enhance --scale-factor 12`),
PyTorch default init (the official init call is commented out; we keep
N(0, 0.02) kernels and PyTorch's default biases).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zerodce_official  # noqa: E402


def get_config(arg=None):
  c = zerodce_official.get_config(arg)
  c.model.arch = "zerodce++"
  c.data.image_size = 512
  c.loss.weights.tv = 1600.0
  c.num_epochs = 100
  return c
