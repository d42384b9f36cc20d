"""Smoke test: trains in seconds on a CPU, no data needed.

    zerodce train --config configs/smoke.py --workdir /tmp/smoke

64 synthetic multi-exposure images of 32x32 (smooth random scenes at random
exposures, made from the seed), the 3-32-8 ablation net, 40 steps of batch 8,
lr 1e-3, checkpoints every 10 steps. Expect the loss to fall and a finished
run in well under a minute on a 2-core CPU.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zerodce_official  # noqa: E402


def get_config(arg=None):
  c = zerodce_official.get_config(arg)
  c.model.arch = "3-32-8"
  c.data.source = "synthetic"
  c.data.image_size = 32
  c.data.num_synthetic = 64
  c.loss.exposure_patch = 8
  c.optim.learning_rate = 1e-3
  c.num_steps = 40
  c.log_every = 5
  c.checkpoint_every = 10
  c.keep_checkpoints = 2
  c.sample_every = 20
  c.num_samples = 2
  return c
