"""Roofline: model FLOPs (counted from the architecture), achieved FLOP/s and
the backend's measured peak (a jitted matmul), as a fraction of peak.

    python -m benchmarks.roofline [--quick]

Writes OUT/roofline.json and OUT/roofline.png.
"""

import os
import sys

from benchmarks import _common

from benchmarks import harness as bench
from zerodce_jax.core import models


def main(argv=None):
  args = _common.parser(__doc__).parse_args(argv)
  sizes, batches = [(900, 1200)], [1, 4]
  if args.quick:
    sizes, batches, args.repeats = [(24, 36)], [1], 1
  records = bench.run(tasks=["infer", "roofline"], sizes=sizes,
                      batches=batches, scale_factors=(1,),
                      model_names=["zerodce"], repeats=args.repeats,
                      shared=args.shared)
  peak = [r for r in records if r["task"] == "matmul_peak"][0]["gflop_per_s"]
  print(f"FLOPs per pixel (forward): Zero-DCE "
        f"{bench.flops_per_pixel(models.ARCHITECTURES['zerodce']):,.0f}, "
        f"Zero-DCE++ "
        f"{bench.flops_per_pixel(models.ARCHITECTURES['zerodce++']):,.0f}")
  print(f"measured peak (matmul): {peak:,.1f} GFLOP/s")
  for r in records:
    if r["task"] == "infer":
      r["fraction_of_peak"] = r["gflop_per_s"] / peak
      print(f"{r['model']} {r['height']}x{r['width']} b{r['batch']}: "
            f"{r['gflop']:.1f} GFLOP in {r['median_s']:.3f} s = "
            f"{r['gflop_per_s']:.1f} GFLOP/s, {100 * r['fraction_of_peak']:.0f}"
            "% of peak")
  os.makedirs(args.out, exist_ok=True)
  bench.write_json(records, os.path.join(args.out, "roofline.json"))
  bench.plot_records(records, os.path.join(args.out, "roofline.png"),
                     title="zerodce-jax roofline")
  return 0


if __name__ == "__main__":
  sys.exit(main())
