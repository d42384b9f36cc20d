"""Where the time goes on this backend, and what the alternatives measure.

    python -m benchmarks.op_profile [--quick] [--out DIR]

1. The matmul peak (a jitted 2048^2 float32 product), as the yardstick.
2. A jax.profiler trace of Zero-DCE inference (1200x900, batch 1) and of the
   official train steps of Zero-DCE and Zero-DCE++ (8 x 256x256, one
   device): the ops that take the time, by kind (convolution, fusion, while
   loop, dot).
3. Each of the seven 3x3 convolution layers alone at those sizes, with
   each forward algorithm of zerodce_jax.conv_candidates (XLA's convolution,
   im2col + one matrix product, Winograd F(2x2,3x3), the skip concatenation
   split in two) and, at the training size, each gradient (input gradient;
   kernel gradient by XLA and by the scanned im2col of models.py): GFLOP/s
   counted as direct convolution and the fraction of the matmul peak.

Writes OUT/op_profile.json.
"""

import json
import os
import sys

from benchmarks import _common

import jax
import numpy as np

from benchmarks import harness as bench, profiling
from zerodce_jax.core import models
from zerodce_jax import training


def _print_ops(title, rows, top=8):
  kinds = profiling.time_by_kind(rows)
  total = sum(kinds.values())
  print(f"\n{title}: {total:.3f} s in traced ops; by kind: " + ", ".join(
      f"{k} {v:.3f} s ({100 * v / total:.0f}%)" for k, v in kinds.items()))
  for r in rows[:top]:
    print(f"  {r['op']:<40} {r['kind']:<12} {r['s_per_call']:8.4f} s "
          f"{100 * r['share']:5.1f}%")


def main(argv=None):
  args = _common.parser(__doc__).parse_args(argv)
  (h, w), (th, tb) = (900, 1200), (256, 8)
  if args.quick:
    (h, w), (th, tb), args.repeats = (24, 36), (16, 2), 1
  arch = models.ARCHITECTURES["zerodce"]
  peak = bench.bench_matmul_peak(repeats=args.repeats)["gflop_per_s"]
  print(f"matmul peak: {peak:.1f} GFLOP/s ({jax.default_backend()})")

  params, origin = bench.official_params("zerodce", shared=args.shared,
                                         flush=True)
  model = models.make_model("zerodce")
  x = np.random.default_rng(0).random((1, h, w, 3), np.float32)
  infer_ops = profiling.op_profile(
      lambda p, a: model.apply({"params": p}, a)[0], params, x,
      repeats=args.repeats)
  _print_ops(f"Zero-DCE inference {w}x{h} b1", infer_ops)

  batch = np.random.default_rng(1).random((tb, th, th, 3), np.float32)
  train_ops = {}
  for name in ("zerodce", "zerodce++"):
    state, loss_fn = bench.official_train_state(name)
    train_ops[name] = profiling.op_profile(
        lambda s, b, f=loss_fn: training.train_step(s, b, loss_fn=f)[0].params,
        state, batch, repeats=args.repeats)
    _print_ops(f"{name} train step {tb}x{th}x{th}", train_ops[name])

  layers = profiling.time_conv_layers(arch, height=h, width=w, batch=1,
                                      repeats=args.repeats)
  layers += profiling.time_conv_layers(
      arch, height=th, width=th, batch=tb, candidates=("xla",),
      gradients=profiling.GRADIENTS, repeats=args.repeats)
  print(f"\n{'size':<14}{'layer':>5}{'cin':>5}{'cout':>5}  {'algorithm':<18}"
        f"{'s':>9}{'GFLOP/s':>9}{'% peak':>8}{'max|diff|':>11}")
  for r in layers:
    r["fraction_of_peak"] = r["gflop_per_s"] / peak
    diff = "" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.1e}"
    print(f"{r['batch']}x{r['width']}x{r['height']:<6}{r['layer']:>5}"
          f"{r['cin']:>5}{r['cout']:>5}  {r['algorithm']:<18}"
          f"{r['median_s']:9.4f}{r['gflop_per_s']:9.1f}"
          f"{100 * r['fraction_of_peak']:7.0f}%{diff:>11}")
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "op_profile.json"), "w") as f:
    json.dump({
      "machine": bench.machine_info(), "matmul_peak_gflop_per_s": peak,
      "inference_size": [h, w], "train_batch": [tb, th, th],
      "weights": origin, "inference_ops": infer_ops,
      "train_step_ops": train_ops,
      "layers": layers}, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
