"""Smoke sweep: four variants of the smoke config in one program, seconds on
a CPU, no data needed.

    zerodce sweep --config configs/sweep_smoke.py --workdir /tmp/sweep
    zerodce sweep report /tmp/sweep

The smoke config (64 synthetic 32x32 images, the 3-32-8 net, 40 steps of
batch 8, lr 1e-3) as four variants that share one compiled step: the full
loss, without the spatial term, without the exposure term, and the full
loss at lr 3e-3. Expect one group of 4, finished in well under a minute on
a 2-core CPU: W/<variant>/weights.msgpack for each, W/variants.json, and a
report (brightness, LOE of the bundled sample image) with a 5-column grid.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ml_collections  # noqa: E402
import smoke  # noqa: E402


def get_config(arg=None):
  c = smoke.get_config(arg)
  c.sweep = ml_collections.ConfigDict()
  c.sweep.variants = [
      dict(name="full", overrides={}),
      dict(name="no_spa", overrides={"loss.weights.spa": 0.0}),
      dict(name="no_exp", overrides={"loss.weights.exp": 0.0}),
      dict(name="lr3e-3", overrides={"optim.learning_rate": 3e-3}),
  ]
  c.sweep.seeds = ()
  return c
