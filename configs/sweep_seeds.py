"""Seed variance of the official recipe: four seeds trained together.

    zerodce sweep --config configs/sweep_seeds.py --workdir runs/seeds \
        --config.data.path=../shared/train_images
    zerodce sweep report runs/seeds --paired LOL/low LOL/high

zerodce_official with seeds 0, 1, 2, 3 (initialisation and data order from
each seed), one group, one jitted step; --seeds 0,1,...,7 to change the
list. Expect their PSNR/SSIM to spread by a few tenths of a dB: the noise
floor under which ablation differences mean nothing.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ml_collections  # noqa: E402
import zerodce_official  # noqa: E402


def get_config(arg=None):
  c = zerodce_official.get_config(arg)
  c.sweep = ml_collections.ConfigDict()
  c.sweep.variants = []
  c.sweep.seeds = (0, 1, 2, 3)
  return c
