"""Sweep throughput: one jitted step training K variants (``zerodce sweep``)
vs K separate official steps (``zerodce train``), on the current device.

    python -m benchmarks.sweep [--quick] [--ks 1,2,4,8] [--model zerodce]
        [--size 256] [--batch 8] [--strategies vmap,unroll] [--repeats 5]

Each variant is the official recipe (batch 8 of 256x256 by default) with its
own seed; the step is ``training.sweep.make_sweep_step`` on one device, fed
fixed host batches ``[K, B, H, W, 3]`` placed once (the input pipeline is
``benchmarks.input_pipeline``'s subject). ``separate`` is
``harness.bench_jax_train_step``, the step ``zerodce train`` runs; the
speed-up is ``K * separate / sweep``. Compilation is timed apart. Writes
OUT/sweep.json (with the machine); ``markdown_table`` renders it for
docs/sweep.md.
"""

import os
import sys
import time

from benchmarks import _common


def bench_sweep_step(name: str, *, k: int, height: int, width: int,
                     batch: int, strategy: str, repeats: int) -> dict:
  """``K`` official-recipe variants (seeds 0..K-1) in one sweep step."""
  import jax  # noqa: PLC0415 - after XLA_FLAGS are set
  import numpy as np  # noqa: PLC0415
  from benchmarks import harness as bench  # noqa: PLC0415
  from zerodce_jax.core import losses, models  # noqa: PLC0415
  from zerodce_jax.training import config_utils, sweep  # noqa: PLC0415
  from zerodce_jax.training.step import model_from_config  # noqa: PLC0415

  config = config_utils.load_config(str(_common.ROOT / "configs" /
                                        "zerodce_official.py"))
  separable = models.ARCHITECTURES[name]["separable"]
  config_utils.apply_overrides(config, [
      ("model.arch", name), ("data.image_size", str(height)),
      ("batch_size", str(batch)),
      ("loss.weights.tv", str((losses.OFFICIAL_PP_WEIGHTS if separable
                               else losses.OFFICIAL_WEIGHTS)["tv"]))])
  group = sweep.expand_variants(config, seeds=list(range(k)))
  model = model_from_config(config)
  terms = list(dict(config.loss.weights))
  loss_fn = sweep.make_sweep_loss_fn(model, terms=terms,
                                     color_eps=config.loss.color_eps)
  o = config.optim
  tx = sweep.make_sweep_optimizer(learning_rate=o.learning_rate,
                                  weight_decay=o.weight_decay,
                                  clip_norm=o.clip_norm)
  layout = sweep.SweepLayout(jax.local_devices()[:1], num_variants=k,
                             batch_size=batch)
  step = sweep.make_sweep_step(loss_fn, layout, strategy=strategy)
  state = layout.put(sweep.init_sweep_state(group, model, tx))
  hp = layout.put(sweep.group_hyperparams(group, terms))
  x = layout.put_data(np.random.default_rng(0).random(
      (k, batch, height, width, 3)).astype(np.float32) * 0.4)
  t = time.perf_counter()
  box = list(step(state, x, None, hp))  # the first call compiles
  jax.block_until_ready(box)
  first = time.perf_counter() - t

  def run():
    box[0], m = step(box[0], x, None, hp)
    jax.block_until_ready(m)

  med, mn, _ = bench.timeit(run, repeats=repeats)
  dev = jax.devices()[0]
  return {"task": "sweep_step", "model": name, "framework": "jax",
          "strategy": strategy, "variants": k, "height": height,
          "width": width, "batch": batch, "dtype": "float32",
          "device": dev.platform, "device_kind": dev.device_kind,
          "median_s": med, "min_s": mn,
          "compile_s": max(0.0, first - med),
          "images_per_s": k * batch / med,
          "load_average": os.getloadavg()[0]}  # a shared machine shows


def markdown_table(doc: dict) -> str:
  """``sweep.json`` as a markdown table (the machine and date are the
  caller's: ``benchmarks.report`` heads every table with them)."""
  recs = doc["records"]
  sep = {(r["model"], r["height"], r["batch"]): r["median_s"]
         for r in recs if r["task"] == "train_step"}
  rows = ["| model | size | batch | strategy | variants K | step ms | "
          "ms per variant | images/s | speed-up vs K separate steps | "
          "compile s |", "|---|---|---|---|---|---|---|---|---|---|"]
  for r in recs:
    if r["task"] == "train_step":
      rows.append(
          f"| {r['model']} | {r['width']}x{r['height']} | {r['batch']} | "
          f"separate (`zerodce train`) | 1 | {r['median_s'] * 1e3:,.0f} | "
          f"{r['median_s'] * 1e3:,.0f} | {r['batch'] / r['median_s']:.1f} "
          f"| 1.00x | {r['compile_s']:.1f} |")
  for r in recs:
    if r["task"] != "sweep_step":
      continue
    base = sep.get((r["model"], r["height"], r["batch"]))
    ratio = (f"{r['variants'] * base / r['median_s']:.2f}x" if base
             else "-")
    rows.append(
        f"| {r['model']} | {r['width']}x{r['height']} | {r['batch']} | "
        f"{r['strategy']} | {r['variants']} | {r['median_s'] * 1e3:,.0f} | "
        f"{r['median_s'] / r['variants'] * 1e3:,.0f} | "
        f"{r['images_per_s']:.1f} | {ratio} | {r['compile_s']:.1f} |")
  loads = [r["load_average"] for r in recs if "load_average" in r]
  load = (f"; load average {min(loads):.1f}-{max(loads):.1f} while it ran "
          "(other work on the machine)" if loads else "")
  rows.append(f"\nOne device; median of the timed steps, compilation "
              f"excluded{load}.")
  return "\n".join(rows)


def main(argv=None):
  ap = _common.parser(__doc__)
  ap.add_argument("--ks", default="1,2,4,8",
                  help="numbers of variants (default 1,2,4,8)")
  ap.add_argument("--model", default="zerodce",
                  help="architecture (default zerodce)")
  ap.add_argument("--size", type=int, default=256)
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--strategies", default="vmap,unroll",
                  help="sweep strategies (default vmap,unroll)")
  args = ap.parse_args(argv)
  ks = [int(k) for k in args.ks.split(",")]
  if args.quick:
    args.model, args.size, args.repeats, ks = "3-32-8", 32, 1, [1, 2]
  import json  # noqa: PLC0415
  from benchmarks import harness as bench  # noqa: PLC0415
  records = [bench.bench_jax_train_step(
      args.model, height=args.size, width=args.size, batch=args.batch,
      repeats=args.repeats)]
  records[0]["load_average"] = os.getloadavg()[0]
  print(f"separate: {records[0]['median_s'] * 1e3:,.0f} ms", flush=True)
  for strategy in args.strategies.split(","):
    for k in ks:
      r = bench_sweep_step(args.model, k=k, height=args.size,
                           width=args.size, batch=args.batch,
                           strategy=strategy, repeats=args.repeats)
      print(f"{strategy} K={k}: {r['median_s'] * 1e3:,.0f} ms "
            f"({r['images_per_s']:.1f} images/s)", flush=True)
      records.append(r)
  path = os.path.join(args.out, "sweep.json")
  bench.write_json(records, path)
  with open(path) as f:
    print(markdown_table(json.load(f)))
  return 0


if __name__ == "__main__":
  sys.exit(main())
