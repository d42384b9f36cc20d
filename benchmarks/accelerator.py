"""One command for an accelerator: device facts and matmul peak, inference
and train-step timings against PyTorch on the same device, the roofline, and
time to the official model (benchmarks.accelerator_parts has the parts).

    python -m benchmarks.accelerator --out DIR [--data FOLDER] [--budget 470]
    python -m benchmarks.accelerator --quick --out /tmp/acc   # CPU check

FOLDER: the training images, e.g. a compact copy made by
`zerodce data pack ../shared/train_images --out FOLDER` (256x256 JPEGs)
for a machine without ../shared. Each part writes its JSON
under DIR before the next starts; the recipe part trains until the budget
(seconds for the whole command) and saves DIR/<config>.msgpack.
"""

import argparse
import sys


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument("--out", required=True, help="folder for the JSON files "
                  "and trained weights")
  ap.add_argument("--data", help="training image folder for the recipe part "
                  "(default: a few steps on synthetic images)")
  ap.add_argument("--budget", type=float, default=470.0,
                  help="seconds for the whole command (default 470)")
  ap.add_argument("--workroot", help="where the training runs keep "
                  "checkpoints (default OUT/runs)")
  ap.add_argument("--check", nargs=2, metavar=("WEIGHTS", "NPZ"),
                  action="append",
                  help="also measure the largest difference from reference "
                  "outputs on this device (see accelerator.equivalence)")
  ap.add_argument("--quick", action="store_true",
                  help="tiny sizes on any device (the test suite runs this)")
  args = ap.parse_args(argv)
  from benchmarks import accelerator_parts as accelerator  # noqa: PLC0415
  accelerator.run(args.out, plan="quick" if args.quick else "full",
                  data=args.data, budget_s=args.budget,
                  workroot=args.workroot, check=args.check,
                  log=lambda m: print(m, flush=True))
  return 0


if __name__ == "__main__":
  sys.exit(main())
