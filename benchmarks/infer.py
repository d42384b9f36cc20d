"""Inference runtime: Zero-DCE and Zero-DCE++ (scale 1 and 12), JAX vs PyTorch.

    python benchmarks/infer.py [--vs-torch] [--quick]

Sizes 256x256, 512x512, 1200x900 (the paper's), 1920x1080, 3840x2160; batch 1
and 4 (4 at the two smaller sizes); float32 and bfloat16. Median of repeated
runs after compilation (compile time reported apart). Writes
OUT/infer.json and OUT/infer.png.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

from zerodce_jax import bench  # noqa: E402


def main(argv=None):
  args = _common.parser(__doc__).parse_args(argv)
  if args.quick:
    plan = [dict(sizes=[(24, 36)], batches=[1], dtypes=["float32"])]
    args.repeats = 1
  else:
    plan = [dict(sizes=[(256, 256), (512, 512)], batches=[1, 4],
                 dtypes=["float32", "bfloat16"]),
            dict(sizes=[(900, 1200), (1080, 1920), (2160, 3840)],
                 batches=[1], dtypes=["float32", "bfloat16"])]
  records = []
  for p in plan:
    records += bench.run(tasks=["infer"], vs_torch=args.vs_torch,
                         repeats=args.repeats, shared=args.shared, **p)
  _common.finish(records, args.out, "infer", "zerodce-jax inference")
  return 0


if __name__ == "__main__":
  sys.exit(main())
