"""Zero-DCE with the paper's loss formulas and weights (W_col 0.5, W_tvA 20).

    zerodce train --config configs/zerodce_paper.py --workdir runs/paper \
        --config.data.path=../shared/train_images

Differs from zerodce_official in the loss only (paper variants: absolute
exposure error, in-image spatial neighbours, sum-of-squares colour term,
(|dx|+|dy|)^2 smoothness) and in zero bias init (paper: constant biases).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zerodce_official  # noqa: E402


def get_config(arg=None):
  c = zerodce_official.get_config(arg)
  c.model.bias_init = "zeros"
  c.loss.variant = "paper"
  c.loss.weights = dict(spa=1.0, exp=1.0, col=0.5, tv=20.0)
  return c
