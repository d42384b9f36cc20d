"""Training launcher, the same as ``zerodce train``.

    python train/main.py --config configs/smoke.py --workdir /tmp/smoke \
        [--config.field=value ...] [--multihost]
"""

import sys

from zerodce_jax import cli

if __name__ == "__main__":
  sys.exit(cli.main(["train", *sys.argv[1:]]))
