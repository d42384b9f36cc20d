"""The paper's architecture ablations (layers-filters-iterations).

    zerodce train --config configs/ablation_arch.py:3-32-8 --workdir runs/3-32-8 \
        --config.data.path=../shared/train_images

ARG: 3-32-8 | 7-16-8 | 7-32-1 | 7-32-16 (7-32-8 is zerodce_official).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zerodce_official  # noqa: E402

CHOICES = ("3-32-8", "7-16-8", "7-32-1", "7-32-16")


def get_config(arg=None):
  if arg not in CHOICES:
    raise ValueError(f"ablation_arch needs :ARG, one of {', '.join(CHOICES)}")
  c = zerodce_official.get_config()
  c.model.arch = arg
  return c
