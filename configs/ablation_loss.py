"""The paper's loss ablations: the official recipe without one loss term.

    zerodce train --config configs/ablation_loss.py:no_col --workdir runs/no_col \
        --config.data.path=../shared/train_images

ARG: no_spa | no_exp | no_col | no_tv (the term's weight is set to 0 and the
term is not computed).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zerodce_official  # noqa: E402

CHOICES = ("no_spa", "no_exp", "no_col", "no_tv")


def get_config(arg=None):
  if arg not in CHOICES:
    raise ValueError(f"ablation_loss needs :ARG, one of {', '.join(CHOICES)}")
  c = zerodce_official.get_config()
  c.loss.weights[arg[3:]] = 0.0
  return c
