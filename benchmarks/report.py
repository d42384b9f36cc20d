"""Benchmark JSON -> the README's results section (tables, not typed by hand).

    python benchmarks/report.py [--results benchmarks/results] [--readme README.md]

Replaces the text between ``<!-- bench:start -->`` and ``<!-- bench:end -->``
in the README with tables built from infer.json, infer_peers.json,
infer_strongest.json, train_step.json, roofline.json, op_profile.json and
input_pipeline.json (those present), with the machine and
date they were measured on.
"""

import argparse
import json
import os
import sys

from benchmarks import harness as bench, profiling

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _ms(s):
  return f"{s * 1e3:,.1f}"


def _machine(doc):
  m = doc["machine"]
  return (f"{m['cpu']}, {m['cores']} cores, JAX {m['jax']} on "
          f"{m['backend']} ({m['device_kind']}), {m['date']}")


def _key(r):
  return (r["task"], r["model"], r["height"], r["width"], r["batch"],
          r.get("devices", 1))


def _vs_peers(recs):
  """``bench.ratios`` (JAX vs the fastest peer run) by JAX record key."""
  return {_key(q): q for q in bench.ratios(recs)}


def infer_table(doc):
  recs = doc["records"]
  rows = ["| model | size (WxH) | batch | dtype | JAX ms | compile s | "
          "PyTorch ms, fastest mode (default / flush-denormal) | "
          "onnxruntime ms | JAX speed-up vs fastest peer |",
          "|---|---|---|---|---|---|---|---|---|"]
  vs = _vs_peers(recs)
  for r in recs:
    if r["framework"] != "jax":
      continue
    q = vs.get(_key(r)) if r["dtype"] == "float32" else None
    if q:
      d, f, o = q["torch_default_s"], q["torch_ftz_s"], q["onnxruntime_s"]
      tcell = ("" if d is None and f is None else
               f"{_ms(d) if d is not None else '-'} / "
               f"{_ms(f) if f is not None else '-'}")
      ocell = _ms(o) if o is not None else ""
      ratio = f"{q['speedup_vs_best_peer']:.2f}x ({q['best_peer']})"
    else:
      tcell = ocell = ratio = ""
    rows.append(f"| {r['model']} | {r['width']}x{r['height']} | {r['batch']} "
                f"| {r['dtype']} | {_ms(r['median_s'])} | "
                f"{r['compile_s']:.2f} | {tcell} | {ocell} | {ratio} |")
  return "\n".join(rows)


def train_table(doc):
  recs = doc["records"]
  rows = ["| framework | model | batch x size | devices | dtype | median s | "
          "compile s | images/s | JAX speed-up vs fastest peer |",
          "|---|---|---|---|---|---|---|---|---|"]
  vs = _vs_peers(recs)
  for r in recs:
    ratio, name = "", r["framework"]
    if r["framework"] != "jax":
      name = bench.peer_label(r)
    elif r["dtype"] == "float32" and _key(r) in vs:
      q = vs[_key(r)]
      ratio = f"{q['speedup_vs_best_peer']:.2f}x ({q['best_peer']})"
    rows.append(f"| {name} | {r['model']} | {r['batch']} x "
                f"{r['width']} | {r.get('devices') or '-'} | {r['dtype']} | "
                f"{r['median_s']:.3f} | {r.get('compile_s', 0):.1f} | "
                f"{r['images_per_s']:.2f} | {ratio} |")
  return "\n".join(rows)


def profile_table(doc):
  """``benchmarks/op_profile.py``: time by op kind, then each conv layer."""
  peak = doc["matmul_peak_gflop_per_s"]
  lines = [f"Matmul peak measured by the same run: {peak:.1f} GFLOP/s. Time "
           "by op kind in a `jax.profiler` trace (`library`: what XLA:CPU "
           "hands to YNNPACK, i.e. its convolutions and matrix products, "
           "named `ynn_fusion`; loops counted in their body's ops):", ""]
  (h, w), (b, th, tw) = doc["inference_size"], doc["train_batch"]
  traces = [(f"Zero-DCE inference {w}x{h} b1", doc["inference_ops"])]
  traces += [(f"{k} train step {b} x {tw}x{th}", v)
             for k, v in doc["train_step_ops"].items()]
  lines += ["| computation | traced s | by kind | top ops (s) |",
            "|---|---|---|---|"]
  for title, ops in traces:
    kinds = profiling.time_by_kind(ops)
    total = sum(kinds.values())
    by_kind = ", ".join(f"{k} {100 * v / total:.0f}%"
                        for k, v in kinds.items())
    top = ", ".join(f"`{o['op']}` {o['s_per_call']:.3f}"
                    for o in ops[:4])
    lines.append(f"| {title} | {total:.3f} | {by_kind} | {top} |")
  lines += ["", "Each convolution layer alone (GFLOP/s counted as direct "
            "convolution for every algorithm):", "",
            "| activations | layer | cin->cout | algorithm | ms | GFLOP/s | "
            "% of matmul peak |", "|---|---|---|---|---|---|---|"]
  for r in doc["layers"]:
    lines.append(f"| {r['batch']}x{r['width']}x{r['height']} | {r['layer']} | "
                 f"{r['cin']}->{r['cout']} | {r['algorithm']} | "
                 f"{_ms(r['median_s'])} | {r['gflop_per_s']:.1f} | "
                 f"{100 * r['gflop_per_s'] / peak:.0f}% |")
  return "\n".join(lines)


def roofline_table(doc):
  recs = doc["records"]
  peak = [r for r in recs if r["task"] == "matmul_peak"]
  rows = ["| model | size | batch | GFLOP | GFLOP/s | fraction of matmul "
          "peak |", "|---|---|---|---|---|---|"]
  for r in recs:
    if r["task"] == "infer":
      rows.append(f"| {r['model']} | {r['width']}x{r['height']} | "
                  f"{r['batch']} | {r['gflop']:.1f} | {r['gflop_per_s']:.1f} "
                  f"| {100 * r.get('fraction_of_peak', 0):.0f}% |")
  if peak:
    rows.append(f"| matmul {peak[0]['n']}^3 (peak) | | | | "
                f"{peak[0]['gflop_per_s']:.1f} | 100% |")
  return "\n".join(rows)


def pipeline_table(doc):
  rows = ["| stage | size | images/s |", "|---|---|---|"]
  for r in doc["records"]:
    rows.append(f"| {r['stage']} | {r['size']} | {r['images_per_s']:.1f} |")
  return "\n".join(rows)


def _load(path):
  with open(path) as f:
    return json.load(f)


def accelerator_section(folder):
  """Tables of one ``benchmarks/accelerator.py`` run (its ``--out``)."""
  facts = _load(os.path.join(folder, "facts.json"))
  f = facts["facts"]
  peaks = {p["dtype"]: p["gflop_per_s"] for p in facts.get("peaks", [])}
  head = (f"Measured on: {f['device_kind']} ({f.get('torch_device', '')}), "
          f"{f['cores']} host cores, JAX {f['jax']}, PyTorch "
          f"{f.get('torch', '-')} (CUDA {f.get('torch_cuda', '-')}), "
          f"{f['date']}. Source: `{folder}/`. Matmul peak measured by the "
          "same command: " + ", ".join(
              f"{d} {v / 1e3:,.0f} TFLOP/s" for d, v in peaks.items())
          + " (float32 at JAX's default precision, which lets a GPU use "
          "TF32).")
  eq = facts.get("equivalence") or []
  if isinstance(eq, list) and eq:
    by = {}
    for e in eq:
      k = (e["output"], e["precision"])
      by[k] = max(by.get(k, 0), e["max_abs_diff"])
    head += (" Largest difference from the official outputs on this device "
             "(4 crops): " + "; ".join(f"{o} at {p} precision {v:.1e}"
                                       for (o, p), v in sorted(by.items()))
             + ".")
  parts = [head]
  infer = _load(os.path.join(folder, "infer.json"))
  peers = {}
  for r in infer:
    if r.get("framework") == "torch" and "median_s" in r:
      k = (r["model"], r["height"], r["width"], r["batch"], r["dtype"])
      peers.setdefault(k, []).append(r)
  rows = ["| model | size | batch | dtype | JAX ms | ms/image | % of peak | "
          "fastest PyTorch ms (mode) | JAX speed-up |",
          "|---|---|---|---|---|---|---|---|---|"]
  for r in infer:
    if r.get("framework") != "jax" or "median_s" not in r:
      continue
    k = (r["model"], r["height"], r["width"], r["batch"], r["dtype"])
    best = min(peers.get(k, []), key=lambda q: q["median_s"], default=None)
    frac = (f"{100 * r['gflop_per_s'] / peaks[r['dtype']]:.0f}%"
            if r["dtype"] in peaks else "")
    pcell = f"{_ms(best['median_s'])} ({best['mode']})" if best else ""
    ratio = f"{best['median_s'] / r['median_s']:.2f}x" if best else ""
    rows.append(f"| {r['model']} | {r['width']}x{r['height']} | {r['batch']}"
                f" | {r['dtype']} | {r['median_s'] * 1e3:.2f} | "
                f"{r['ms_per_image']:.3f} | {frac} | {pcell} | {ratio} |")
  missing = [r for r in infer if "error" in r or "skipped" in r]
  parts.append("Inference:\n\n" + "\n".join(rows))
  train = _load(os.path.join(folder, "train_step.json"))
  rows = ["| framework | model | batch x 256 | dtype | ms | images/s | "
          "% of peak |", "|---|---|---|---|---|---|---|"]
  for r in train:
    if "median_s" not in r:
      continue
    frac = (f"{100 * r['gflop_per_s'] / peaks[r['dtype']]:.0f}%"
            if r.get("gflop_per_s") and r["dtype"] in peaks else "")
    rows.append(f"| {r['framework']} | {r['model']} | {r['batch']} | "
                f"{r['dtype']} | {r['median_s'] * 1e3:.2f} | "
                f"{r['batch'] / r['median_s']:,.0f} | {frac} |")
  missing += [r for r in train if "error" in r or "skipped" in r]
  parts.append("Train step (official losses + clipped Adam):\n\n"
               + "\n".join(rows))
  recipe_path = os.path.join(folder, "recipe.json")
  if os.path.isfile(recipe_path):
    for r in _load(recipe_path):
      if "steps" in r:
        parts.append(f"Recipe `{r['config']}`: {r['steps']:,} of "
                     f"{r['total_steps']:,} steps in {r['wall_s']:.0f} s "
                     f"({r['steps_per_s']:.0f} steps/s over the run).")
  n_skip = sum(len(r.get("skipped", [])) if isinstance(r.get("skipped"),
                                                       list) else 0
               for r in missing)
  n_err = sum(1 for r in missing if "error" in r)
  if n_skip or n_err:
    parts.append(f"Not measured in this run: {n_skip} configurations left "
                 f"out by the time budget, {n_err} errors (out of memory); "
                 "listed in the JSON.")
  return "\n\n".join(parts) + "\n"


def build(results):
  parts = []
  for entry in sorted(os.listdir(results)):
    folder = os.path.join(results, entry)
    if (entry.startswith("accelerator_")
        and os.path.isfile(os.path.join(folder, "facts.json"))):
      parts.append(f"#### Accelerator: {entry[len('accelerator_'):]}\n\n"
                   + accelerator_section(folder))
  for name, title, fn in (
      ("infer", "Inference", infer_table),
      ("infer_peers", "Inference against PyTorch and onnxruntime",
       infer_table),
      ("infer_strongest", "Inference against the strongest peers (PyTorch "
       "eager, channels_last, torch.compile; onnxruntime)", infer_table),
      ("train_step", "Training step", train_table),
      ("roofline", "Roofline", roofline_table),
      ("op_profile", "Profile: where the CPU time goes", profile_table),
      ("input_pipeline", "Input pipeline", pipeline_table)):
    path = os.path.join(results, f"{name}.json")
    if not os.path.isfile(path):
      continue
    with open(path) as f:
      doc = json.load(f)
    png = os.path.join(results, f"{name}.png")
    plot = f"\n\n![{title}]({png})" if os.path.isfile(png) else ""
    parts.append(f"#### {title}\n\nMeasured on: {_machine(doc)}. Source: "
                 f"`{path}`.\n\n{fn(doc)}{plot}\n")
  return "\n".join(parts)


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument("--results", default="benchmarks/results")
  ap.add_argument("--readme", default="README.md")
  args = ap.parse_args(argv)
  with open(args.readme) as f:
    text = f.read()
  if START not in text or END not in text:
    print(f"{args.readme}: no {START} ... {END} markers", file=sys.stderr)
    return 2
  head, rest = text.split(START, 1)
  _, tail = rest.split(END, 1)
  with open(args.readme, "w") as f:
    f.write(head + START + "\n" + build(args.results) + END + tail)
  print(f"updated {args.readme} from {args.results}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
