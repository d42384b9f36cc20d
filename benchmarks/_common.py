"""What the benchmark scripts share: where ../shared is, the command line,\nwriting results."""

import argparse
import os
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def shared_dir() -> pathlib.Path:
  """The reference material: ``$ZERODCE_SHARED``, else ``../shared`` beside
  the repository root (the one place that knows where it is)."""
  return pathlib.Path(os.environ.get("ZERODCE_SHARED", ROOT.parent / "shared"))


def parser(doc):
  ap = argparse.ArgumentParser(description=doc,
                               formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument("--quick", action="store_true",
                  help="tiny sizes, 1 repeat: checks the script runs")
  ap.add_argument("--vs-torch", action="store_true",
                  help="also time the official model in PyTorch (if installed)")
  ap.add_argument("--vs-onnxruntime", action="store_true",
                  help="also time the ONNX export in onnxruntime (inference)")
  ap.add_argument("--repeats", type=int, default=5)
  ap.add_argument("--out", default="benchmarks/results",
                  help="folder for the JSON and PNG")
  ap.add_argument("--shared", default=str(shared_dir()),
                  help="../shared (official weights for torch runs)")
  return ap


def finish(records, out, name, title):
  """Writes OUT/NAME.json and .png, prints the table and the peer ratios."""
  from benchmarks import harness as bench  # noqa: PLC0415 - after XLA_FLAGS are set
  os.makedirs(out, exist_ok=True)
  bench.write_json(records, os.path.join(out, f"{name}.json"))
  bench.plot_records(records, os.path.join(out, f"{name}.png"), title=title)
  print(bench.format_records(records))
  for r in bench.ratios(records):
    print(f"{r['task']} {r['model']} {r['width']}x{r['height']} "
          f"b{r['batch']} ({r['devices']} device(s)): JAX is "
          f"{r['speedup_vs_best_peer']:.2f}x the fastest peer "
          f"({r['best_peer']})")
