"""The paper's loss ablation as one sweep: the official recipe in full and
without each of its four terms, five models in one compiled program.

    zerodce sweep --config configs/sweep_loss_ablation.py --workdir runs/loss \
        --config.data.path=../shared/train_images
    zerodce sweep report runs/loss --paired LOL/low LOL/high

Variants: full, no_spa, no_exp, no_col, no_tv (the term's weight set to 0,
as configs/ablation_loss.py; every other setting zerodce_official's). They
differ only in loss weights, so they form one group: one jitted step trains
all five (jax.vmap over the stacked states), about 5x the work of one
official step per step. Expect what the paper's Fig. 7 shows: without L_exp
the images stay dark, without L_col colour casts appear, without L_tvA the
curves are noisy (artifacts), without L_spa contrast drops.
For a CPU-sized look (docs/sweep.md, about 20 minutes on 2 cores):
--config.data.image_size=64 --config.num_steps=150
--config.optim.learning_rate=1e-3.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ml_collections  # noqa: E402
import zerodce_official  # noqa: E402


def get_config(arg=None):
  c = zerodce_official.get_config(arg)
  c.sweep = ml_collections.ConfigDict()
  c.sweep.variants = [dict(name="full", overrides={})] + [
      dict(name=f"no_{t}", overrides={f"loss.weights.{t}": 0.0})
      for t in ("spa", "exp", "col", "tv")]
  c.sweep.seeds = ()
  return c
