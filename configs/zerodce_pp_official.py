"""Zero-DCE++ as its official training script runs it.

    zerodce train --config configs/zerodce_pp_official.py --workdir runs/pp \
        --config.data.path=../shared/train_images

512x512 images, TV weight 1600, 100 epochs, scale factor 1 in training (the
official test script enhances at scale 12: `zerodce enhance --scale-factor 12`),
PyTorch's default init of kernels and biases (the official init call is
commented out): U(+-1/sqrt(fan_in)), fan_in 9 for a depthwise 3x3 kernel. An
earlier version kept Zero-DCE's N(0, 0.02) kernels, 4-10x smaller per layer
(docs/training.md, the bundled models, says what that changed).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zerodce_official  # noqa: E402


def get_config(arg=None):
  c = zerodce_official.get_config(arg)
  c.model.arch = "zerodce++"
  c.model.kernel_init = "torch"
  c.data.image_size = 512
  c.loss.weights.tv = 1600.0
  c.num_epochs = 100
  return c
