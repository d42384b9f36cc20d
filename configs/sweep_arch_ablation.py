"""The paper's architecture ablation (layers-filters-iterations) as one sweep.

    zerodce sweep --config configs/sweep_arch_ablation.py --workdir runs/arch \
        --config.data.path=../shared/train_images
    zerodce sweep report runs/arch --paired LOL/low LOL/high

Variants 3-32-8, 7-16-8, 7-32-1, 7-32-8 (Zero-DCE itself) and 7-32-16,
every other setting zerodce_official's. Their params differ in shape, so
each is its own group: five compiled steps run one after another (add
--seeds 0,1,2 to train three seeds of each architecture together per
group). Expect, as the paper's Table 2: 7-32-8 and 7-32-16 close, 3-32-8
and 7-16-8 slightly worse, 7-32-1 clearly worse (one iteration cannot
brighten enough).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ml_collections  # noqa: E402
import zerodce_official  # noqa: E402

ARCHS = {"3-32-8": "3-32-8", "7-16-8": "7-16-8", "7-32-1": "7-32-1",
         "7-32-8": "zerodce", "7-32-16": "7-32-16"}


def get_config(arg=None):
  c = zerodce_official.get_config(arg)
  c.sweep = ml_collections.ConfigDict()
  c.sweep.variants = [dict(name=name, overrides={"model.arch": arch})
                      for name, arch in ARCHS.items()]
  c.sweep.seeds = ()
  return c
