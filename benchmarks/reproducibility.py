"""Seed study: does our recipe reproduce the official training script?

    python -m benchmarks.reproducibility [--size 128 --steps 1500 \
        --seeds 0,1,2 --workdir /tmp/repro] [--estimate] [--report-only]

Trains S seeds of ``configs/zerodce_official.py`` with ``zerodce_jax``
(``training.loop.train``, the official epoch structure: last partial batch
kept, reshuffled every epoch) and S seeds of the official script's semantics
in PyTorch (``benchmarks/torch_port.py``: DataLoader reshuffling from a
``torch.Generator`` seed, N(0, 0.02) conv weights with PyTorch default
biases, Adam with coupled L2, ``clip_grad_norm_(0.1)``, the official loss
with its eps-free colour term) on the same images at a reduced scale
(``--size`` x ``--size`` Lanczos-resized, batch 8, ``--steps`` steps), then
measures every model on the same data:

* loss curves (every step's batch loss; mean and min-max band per
  implementation),
* the official loss (eps-free colour term) on a fixed set of 64 training
  images at the training size,
* mean output brightness on the 73 official test images (DICM, LIME),
* PSNR between the outputs of every pair of models on those images
  (within torch seeds, within ours, across),
* PSNR and SSIM (both protocols) on ../shared/lol_dev (100 LOL pairs).

The claim it decides: the distances across implementations lie within the
seed-to-seed spread of each (criteria in ``verdict``). Runs are resumable
(checkpoints in the workdir; rerun the same command) and sequential; the
trainings are the long part, so run it niced in the background.

Writes ``benchmarks/results/reproducibility.json``; ``docs/
reproducibility.md`` (table) and ``docs/images/reproducibility.png``
(figure) are generated from the JSON by ``write_report`` (``--report-only``
regenerates them without training or evaluating).
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import sys
import time
from typing import Any

from benchmarks._common import ROOT, shared_dir

RESULTS = ROOT / "benchmarks" / "results" / "reproducibility.json"
DOC = ROOT / "docs" / "reproducibility.md"
FIGURE = ROOT / "docs" / "images" / "reproducibility.png"
IMPLS = ("torch", "ours")
LABELS = {"torch": "official script (PyTorch port)",
          "ours": "zerodce-jax (configs/zerodce_official.py)"}
FIXED_SET = 64            # training images for the final-loss measure
FIXED_SET_SEED = 1234
SMOOTH = 50               # moving-average window of the loss curves


# --------------------------------------------------------------------------
# Training.
# --------------------------------------------------------------------------
def _images(data: str, size: int, workdir: str):
  """The training set resized as the official loader does, cached."""
  import numpy as np  # noqa: PLC0415
  from benchmarks import torch_port  # noqa: PLC0415
  from zerodce_jax.formats import image_io  # noqa: PLC0415
  cache = os.path.join(workdir, f"train_{size}.npy")
  if os.path.exists(cache):
    return np.load(cache, allow_pickle=False)
  x = torch_port.official_images(image_io.list_images(data), size)
  np.save(cache + ".tmp.npy", x)
  os.replace(cache + ".tmp.npy", cache)
  return x


def our_config(*, data: str, size: int, steps: int, seed: int,
               checkpoint_every: int = 100):
  """``zerodce_official`` at the study's scale."""
  from zerodce_jax.training import config_utils  # noqa: PLC0415
  c = config_utils.load_config(str(ROOT / "configs" / "zerodce_official.py"))
  c.data.path = data
  c.data.image_size = size
  c.num_steps = steps
  c.seed = seed
  c.log_every = 1               # every step's loss, as the torch run keeps
  c.checkpoint_every = checkpoint_every
  c.keep_checkpoints = 2
  c.sample_every = 0
  return c


def train_ours(args, seed: int) -> str:
  from zerodce_jax.training import loop  # noqa: PLC0415
  wd = os.path.join(args.workdir, f"ours_s{seed}")
  if not os.path.exists(os.path.join(wd, "weights.msgpack")):
    loop.train(our_config(data=args.data, size=args.size, steps=args.steps,
                          seed=seed), wd, progress=False)
  return wd


def train_torch(args, seed: int, images) -> str:
  """The official semantics in PyTorch, one thread: on a CPU shared with
  other work, two torch threads ran 2-5x slower than one (each waits for
  the other at every op)."""
  from benchmarks import torch_port  # noqa: PLC0415
  wd = os.path.join(args.workdir, f"torch_s{seed}")
  if not os.path.exists(os.path.join(wd, "params.npz")):
    torch_port.train_official(images, wd, arch="zerodce", seed=seed,
                              num_steps=args.steps, batch_size=8,
                              checkpoint_every=100, threads=1,
                              channels_last=True)
  return wd


def estimate(args, images) -> dict[str, float]:
  """Seconds per step of each implementation (20 steps after 2 warm-up)."""
  import shutil  # noqa: PLC0415
  import tempfile  # noqa: PLC0415
  from benchmarks import torch_port  # noqa: PLC0415
  from zerodce_jax.training import loop  # noqa: PLC0415
  out = {}
  tmp = tempfile.mkdtemp(prefix="repro-estimate-")
  try:
    for impl in IMPLS:
      times = []
      for n in (2, 22):
        wd = os.path.join(tmp, f"{impl}_{n}")
        t = time.perf_counter()
        if impl == "torch":
          torch_port.train_official(images, wd, seed=0, num_steps=n,
                                    checkpoint_every=n, report=None,
                                    threads=1,
                                    channels_last=True)
        else:
          loop.train(our_config(data=args.data, size=args.size, steps=n,
                                seed=0, checkpoint_every=n), wd,
                     progress=False)
        times.append(time.perf_counter() - t)
      out[impl] = (times[1] - times[0]) / 20
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  return out


def write_official_init(workdir: str, *, arch: str, seed: int,
                        init: str = "torch", last_batch: str = "keep"
                        ) -> None:
  """Seeds ``workdir`` with a step-0 checkpoint holding the official
  script's initialisation (``torch_port.make_official_net``: for Zero-DCE++
  PyTorch's default init of every weight and bias, U(+-1/sqrt(fan_in)),
  several times larger than our N(0, 0.02) kernels) and a fresh official
  optimiser state, so that ``zerodce train --workdir WORKDIR`` with an
  official config of the same ``arch``, ``seed`` and ``data.last_batch``
  starts from it (it "resumes" at step 0)."""
  import jax  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  from benchmarks import torch_port  # noqa: PLC0415
  from zerodce_jax.core import models  # noqa: PLC0415
  from zerodce_jax.formats import checkpoints  # noqa: PLC0415
  from zerodce_jax.training import step as st  # noqa: PLC0415
  manager = checkpoints.make_manager(os.path.join(workdir, "checkpoints"),
                                     keep=3)
  if manager.latest_step() is not None:
    raise FileExistsError(f"{workdir} already holds checkpoints")
  a = models.ARCHITECTURES[arch]
  net = torch_port.make_official_net(arch, seed=seed, init=init)
  params = jax.tree_util.tree_map(np.asarray, torch_port.to_params(net, a))
  tx = st.make_optimizer()
  state = st.TrainState.create(apply_fn=None, params=params, tx=tx)
  checkpoints.save(manager, 0, st.state_dict(state),
                   {"seed": seed, "arch": arch, "step": 0,
                    "data_position": 0, "last_batch": last_batch,
                    "init": f"official ({init}), torch seed {seed}"})
  manager.wait_until_finished()
  manager.close()


# --------------------------------------------------------------------------
# Measuring.
# --------------------------------------------------------------------------
def _curve(wd: str) -> list[float]:
  with open(os.path.join(wd, "metrics.jsonl")) as f:
    rows = [json.loads(line) for line in f if line.strip()]
  by_step = {int(r["step"]): float(r["loss"]) for r in rows}
  return [by_step[s] for s in sorted(by_step)]


def _load_models(args) -> dict[str, dict[str, Any]]:
  """name -> {impl, seed, params, curve} of the finished runs."""
  from benchmarks import torch_port  # noqa: PLC0415
  from zerodce_jax.formats import params_io  # noqa: PLC0415
  runs = {}
  for seed in args.seeds:
    wd = os.path.join(args.workdir, f"torch_s{seed}")
    runs[f"torch_s{seed}"] = dict(impl="torch", seed=seed, curve=_curve(wd),
                                  params=torch_port.load_official_run(wd))
    wd = os.path.join(args.workdir, f"ours_s{seed}")
    params, _, _ = params_io.load_params(os.path.join(wd, "weights.msgpack"))
    runs[f"ours_s{seed}"] = dict(impl="ours", seed=seed, curve=_curve(wd),
                                 params=params)
  return runs


def measure(args, images) -> dict[str, Any]:
  import jax  # noqa: PLC0415
  import jax.numpy as jnp  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  from zerodce_jax.apps import evaluate  # noqa: PLC0415
  from zerodce_jax.core import losses, metrics, models  # noqa: PLC0415
  from zerodce_jax.formats import convert, image_io  # noqa: PLC0415

  runs = _load_models(args)
  names = list(runs)
  model = models.make_model("zerodce")
  apply = jax.jit(lambda p, x: model.apply({"params": p}, x))

  # the official loss on a fixed set of training images
  pick = np.random.default_rng(FIXED_SET_SEED).choice(
      len(images), min(FIXED_SET, len(images)), replace=False)
  fixed = jnp.asarray(images[np.sort(pick)].astype(np.float32) / 255.0)

  @jax.jit
  def fixed_loss(p):
    enhanced, maps = model.apply({"params": p}, fixed)
    return losses.total_loss(enhanced=enhanced, original=fixed, maps=maps,
                             weights="official", variant="official",
                             color_eps=0.0)[0]

  reference = {}
  off = os.path.join(args.shared, "weights", "zerodce_official_epoch99.pth")
  if os.path.exists(off):
    reference["official_epoch99"] = convert.convert_official(
        off, arch="zerodce")[0]
  everyone = {**{n: r["params"] for n, r in runs.items()}, **reference}
  out: dict[str, Any] = {"models": {}, "reference": {}}
  for n, p in everyone.items():
    rec = {"fixed_set_loss": float(fixed_loss(p))}
    if n in runs:
      c = np.asarray(runs[n]["curve"])
      rec.update(impl=runs[n]["impl"], seed=runs[n]["seed"],
                 final_loss_last100=float(c[-100:].mean()))
    (out["models"] if n in runs else out["reference"])[n] = rec

  # official test images: brightness and pairwise output PSNR
  tests = [p for sub in ("DICM", "LIME") for p in image_io.list_images(
      os.path.join(args.shared, "test_images", sub))][:args.limit]
  bright = {n: [] for n in everyone}
  pair_psnr = {pq: [] for pq in itertools.combinations(names, 2)}
  for path in tests:
    x, _ = image_io.read_image(path)
    outs = {n: np.asarray(apply(p, jnp.asarray(x[None]))[0][0])
            for n, p in everyone.items()}
    for n, y in outs.items():
      bright[n].append(float(metrics.brightness(y)))
    for a, b in pair_psnr:
      pair_psnr[(a, b)].append(float(metrics.psnr(outs[a], outs[b])))
  input_brightness = float(np.mean([
      metrics.brightness(image_io.read_image(p)[0]) for p in tests]))
  for n in everyone:
    rec = out["models"].get(n) or out["reference"][n]
    rec["test_brightness"] = float(np.mean(bright[n]))
  out["pairs"] = [{"a": a, "b": b, "psnr": float(np.mean(v)),
                   "kind": _kind(runs[a]["impl"], runs[b]["impl"])}
                  for (a, b), v in pair_psnr.items()]

  # LOL pairs
  lol = os.path.join(args.shared, "lol_dev")
  pairs = evaluate.match_pairs(os.path.join(lol, "low"),
                               os.path.join(lol, "high"))[:args.limit]
  scores = {n: [] for n in everyone}
  for name, lp, hp in pairs:
    low, _ = image_io.read_image(lp)
    high, _ = image_io.read_image(hp)
    for n, p in everyone.items():
      y = np.asarray(apply(p, jnp.asarray(low[None]))[0][0])
      scores[n].append(evaluate.paired_row(name, low, y, high, ssim="both"))
  for n in everyone:
    s = evaluate.summarise(scores[n])
    rec = out["models"].get(n) or out["reference"][n]
    rec.update(lol_psnr=s["psnr"], lol_ssim=s["ssim"],
               lol_ssim_paper=s["ssim_paper"],
               lol_brightness=s["brightness_out"])
  out["curves"] = {n: runs[n]["curve"] for n in names}
  out["data"] = {"test_images": len(tests),
                 "test_input_brightness": input_brightness,
                 "lol_pairs": len(pairs), "fixed_set": int(len(pick))}
  return out


def _kind(a: str, b: str) -> str:
  return f"within {a}" if a == b else "across"


METRICS = (("final_loss_last100", "training loss, mean of the last 100 "
            "steps", 4),
           ("fixed_set_loss", "official loss on 64 fixed training images",
            4),
           ("test_brightness", "mean brightness, 73 test images", 4),
           ("lol_psnr", "LOL dev PSNR (dB)", 2),
           ("lol_ssim_paper", "LOL dev SSIM (paper: 7x7 uniform)", 4),
           ("lol_ssim", "LOL dev SSIM (Gaussian 11x11, dm-pix)", 4))


def verdict(res: dict[str, Any]) -> dict[str, Any]:
  """Decides the claim from the measurements.

  It holds when both:
  * outputs: the mean PSNR between a torch model's and one of ours (the
    across pairs) is at least the lowest PSNR between two seeds of one
    implementation (models of different implementations are no further
    apart than two seeds of the same one can be);
  * figures: for every metric in ``METRICS``, the difference of the two
    implementations' means is at most the larger of their seed-to-seed
    ranges (max - min over seeds).
  """
  import numpy as np  # noqa: PLC0415
  kinds = {}
  for p in res["pairs"]:
    kinds.setdefault(p["kind"], []).append(p["psnr"])
  within = [v for k, vs in kinds.items() if k != "across" for v in vs]
  outputs_ok = float(np.mean(kinds["across"])) >= min(within)
  figures = {}
  for key, _, _ in METRICS:
    vals = {i: [m[key] for m in res["models"].values() if m["impl"] == i]
            for i in IMPLS}
    diff = abs(float(np.mean(vals["ours"]) - np.mean(vals["torch"])))
    spread = max(float(np.ptp(vals[i])) for i in IMPLS)
    figures[key] = {"mean_ours": float(np.mean(vals["ours"])),
                    "mean_torch": float(np.mean(vals["torch"])),
                    "sd_ours": float(np.std(vals["ours"], ddof=1)),
                    "sd_torch": float(np.std(vals["torch"], ddof=1)),
                    "diff": diff, "spread": spread, "ok": diff <= spread}
  pair_summary = {k: {"mean": float(np.mean(v)), "min": float(np.min(v)),
                      "max": float(np.max(v)), "n": len(v)}
                  for k, v in kinds.items()}
  return {"holds": bool(outputs_ok and all(f["ok"] for f in
                                           figures.values())),
          "outputs_ok": bool(outputs_ok), "pairs": pair_summary,
          "figures": figures}


# --------------------------------------------------------------------------
# Report.
# --------------------------------------------------------------------------
def _smooth(c, k=SMOOTH):
  import numpy as np  # noqa: PLC0415
  c = np.asarray(c, np.float64)
  if len(c) < k:
    return c
  return np.convolve(c, np.ones(k) / k, mode="valid")


def write_figure(res: dict[str, Any], path=FIGURE) -> None:
  """Loss curves (mean, min-max band) and the pairwise output PSNRs."""
  import matplotlib  # noqa: PLC0415
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415
  fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(15, 4.2))
  colors = {"torch": "tab:orange", "ours": "tab:blue"}
  for impl in IMPLS:
    cs = np.stack([_smooth(c) for n, c in res["curves"].items()
                   if res["models"][n]["impl"] == impl])
    x = np.arange(cs.shape[1]) + (SMOOTH if cs.shape[1] < len(
        next(iter(res["curves"].values()))) else 1)
    ax.plot(x, cs.mean(0), color=colors[impl], label=LABELS[impl])
    ax.fill_between(x, cs.min(0), cs.max(0), color=colors[impl], alpha=0.25)
  ax.set(xlabel="step", ylabel=f"batch loss ({SMOOTH}-step mean)",
         title="training loss: mean and min-max over seeds")
  ax.legend(fontsize=8)
  kinds = ["within torch", "within ours", "across"]
  for i, k in enumerate(kinds):
    v = [p["psnr"] for p in res["pairs"] if p["kind"] == k]
    bx.scatter(np.full(len(v), i) + np.linspace(-0.1, 0.1, len(v)), v,
               color=["tab:orange", "tab:blue", "tab:green"][i])
    bx.hlines(np.mean(v), i - 0.25, i + 0.25, color="k")
  bx.set_xticks(range(3), kinds)
  bx.set(ylabel="PSNR between outputs (dB), "
         f"{res['data']['test_images']} test images",
         title="how far apart the models' outputs are")
  for impl in IMPLS:
    ms = [m for m in res["models"].values() if m["impl"] == impl]
    cx.scatter([m["test_brightness"] for m in ms],
               [m["lol_psnr"] for m in ms], color=colors[impl],
               label=LABELS[impl])
  ref = "; ".join(f"{n}: {m['lol_psnr']:.2f} dB at brightness "
                  f"{m['test_brightness']:.3f}"
                  for n, m in res.get("reference", {}).items())
  cx.set(xlabel=f"mean output brightness, {res['data']['test_images']} "
         "test images", ylabel="LOL dev PSNR (dB)",
         title="per seed" + (f"\n(full-scale {ref})" if ref else ""))
  cx.legend(fontsize=8)
  fig.suptitle(res["scale"]["text"], fontsize=9)
  fig.tight_layout()
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_doc(res: dict[str, Any], path=DOC) -> None:
  v = res["verdict"]
  lines = [
      "<!-- generated by `python -m benchmarks.reproducibility --report-only`"
      " from `benchmarks/results/reproducibility.json`: do not edit -->",
      "",
      "# Reproducing the official training",
      "",
      "Does `configs/zerodce_official.py` train what the official script "
      "trains? `benchmarks/reproducibility.py` trains "
      f"{len(res['seeds'])} seeds of each, ours and the official script's "
      "semantics in PyTorch (`benchmarks/torch_port.py`, written from the "
      "specification: DataLoader reshuffling every epoch from a "
      "`torch.Generator` seed with the last partial batch kept, N(0, 0.02) "
      "conv weights with PyTorch's default biases, Adam lr 1e-4 with "
      "coupled L2 1e-4 after `clip_grad_norm_(0.1)`, the official loss with "
      "its eps-free colour term), on the same images, and measures every "
      "model on the same data. `tests/tooling/test_torch_port.py` shows the "
      "two train steps agree step for step from the same parameters and "
      "batches; this study covers what that test cannot: initialisation, "
      "data order and the recipe as a whole.",
      "",
      f"**Scale**: {res['scale']['text']}. "
      f"**Machine**: {res['machine']}; {res['date']}. "
      f"Training time: {res['timing']['text']}.",
      "",
      "## Figures (mean ± sample s.d. over seeds; range in brackets)",
      "",
      "| figure | " + " | ".join(LABELS[i] for i in IMPLS)
      + " | difference of means | larger seed range | within? |",
      "|---|---|---|---|---|---|",
  ]
  for key, label, dp in METRICS:
    f = v["figures"][key]
    cells = []
    for i in IMPLS:
      vals = [m[key] for m in res["models"].values() if m["impl"] == i]
      cells.append(f"{f['mean_' + i]:.{dp}f} ± {f['sd_' + i]:.{dp}f} "
                   f"[{min(vals):.{dp}f}, {max(vals):.{dp}f}]")
    label = label.replace("64 fixed", f"{res['data']['fixed_set']} fixed")
    label = label.replace("73 test", f"{res['data']['test_images']} test")
    lines.append(f"| {label} | " + " | ".join(cells)
                 + f" | {f['diff']:.{dp}f} | {f['spread']:.{dp}f} | "
                 + ("yes" if f["ok"] else "**no**") + " |")
  lines += ["", "Reference (the released official Epoch99, trained at full "
            "scale, for orientation only): " + "; ".join(
                f"{n}: LOL dev PSNR {m['lol_psnr']:.2f} dB, SSIM "
                f"{m['lol_ssim_paper']:.4f} (paper) / {m['lol_ssim']:.4f} "
                f"(Gaussian), test brightness {m['test_brightness']:.4f}"
                for n, m in res.get("reference", {}).items())
            + f". Input brightness of the test images: "
            f"{res['data']['test_input_brightness']:.4f}.", "",
            "## Distances between models' outputs", "",
            "PSNR (dB) between two models' outputs, averaged over the "
            f"{res['data']['test_images']} official test images "
            "(higher = closer):", "",
            "| pairs | n | mean | min | max |", "|---|---|---|---|---|"]
  for k in ("within torch", "within ours", "across"):
    p = v["pairs"][k]
    lines.append(f"| {k} | {p['n']} | {p['mean']:.2f} | {p['min']:.2f} | "
                 f"{p['max']:.2f} |")
  lines += ["", "![loss curves, output distances, per-seed figures]"
            "(images/reproducibility.png)", "", "## Verdict", "",
            ("**The claim holds**" if v["holds"] else
             "**The claim does not hold**")
            + ": " + res["verdict_text"], "",
            "Criteria (`benchmarks.reproducibility.verdict`): the mean "
            "across-implementation output PSNR is at least the lowest "
            "within-implementation one, and every figure's difference of "
            "means is at most the larger seed-to-seed range.", ""]
  lines += res.get("notes", [])
  lines += ["", "## Method", "",
            "SSIM: *paper* is scikit-image's default `structural_"
            "similarity` (7x7 uniform window, sample covariances, per "
            "channel; the protocol of the quoted LOL figures, `zerodce eval "
            "--ssim paper`, JSON key `ssim_paper`); *Gaussian* is dm-pix "
            "(11x11, sigma 1.5; `--ssim gaussian`, key `ssim`). Models are "
            "applied to whole images at native size, float outputs.", "",
            "Rerun: `" + res["command"] + "` (resumes from its workdir); "
            "`--report-only` regenerates this page and the figure from the "
            "JSON.", ""]
  with open(path, "w") as f:
    f.write("\n".join(lines))


def write_report(res: dict[str, Any], *, doc=DOC, figure=FIGURE) -> None:
  """The doc page and its figure, from the results."""
  write_doc(res, doc)
  write_figure(res, figure)


def _verdict_text(v: dict[str, Any]) -> str:
  p = v["pairs"]
  bad = [k for k, f in v["figures"].items() if not f["ok"]]
  text = (f"models of different implementations are {p['across']['mean']:.2f}"
          f" dB apart on average (range {p['across']['min']:.2f}-"
          f"{p['across']['max']:.2f}), two seeds of the official script "
          f"{p['within torch']['mean']:.2f} dB and two of ours "
          f"{p['within ours']['mean']:.2f} dB")
  text += (" (the across mean is " + ("at least" if v["outputs_ok"] else
                                     "below") + " the lowest within-"
           f"implementation pair, {min(p['within torch']['min'], p['within ours']['min']):.2f} dB)")
  if bad:
    text += "; outside the seed spread: " + ", ".join(bad)
  else:
    text += "; every figure's difference lies within the seed spread"
  return text + "."


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument("--size", type=int, default=128)
  ap.add_argument("--steps", type=int, default=1500)
  ap.add_argument("--seeds", default="0,1,2")
  ap.add_argument("--workdir", default="/tmp/zerodce-repro")
  ap.add_argument("--shared", default=str(shared_dir()))
  ap.add_argument("--data", default=None,
                  help="training images (default: SHARED/train_images)")
  ap.add_argument("--estimate", action="store_true",
                  help="time 20 steps of each implementation and stop")
  ap.add_argument("--train-only", action="store_true")
  ap.add_argument("--report-only", action="store_true",
                  help="rewrite the doc and figure from the JSON")
  ap.add_argument("--limit", type=int, default=None,
                  help="only the first N test images and LOL pairs (a "
                  "quick check of the script)")
  ap.add_argument("--out", default=str(RESULTS))
  ap.add_argument("--doc", default=str(DOC))
  ap.add_argument("--figure", default=str(FIGURE))
  ap.add_argument("--note", action="append", default=[],
                  help="a paragraph for the doc's verdict section")
  ap.add_argument("--official-init", metavar="WORKDIR",
                  help="only write a step-0 checkpoint of the official "
                  "initialisation of --arch (seed from --seeds) into "
                  "WORKDIR, for `zerodce train --workdir WORKDIR`")
  ap.add_argument("--arch", default="zerodce++")
  args = ap.parse_args(argv)
  if args.official_init:
    write_official_init(args.official_init, arch=args.arch,
                        seed=int(args.seeds.split(",")[0]))
    return 0
  if args.report_only:
    with open(args.out) as f:
      write_report(json.load(f), doc=args.doc, figure=args.figure)
    return 0
  # Two host devices split each batch (faster on a 2-core CPU; the kept
  # last batch of 2 images splits as 1 + 1); set before JAX initialises.
  os.environ.setdefault("XLA_FLAGS",
                        "--xla_force_host_platform_device_count=2")
  args.seeds = [int(s) for s in args.seeds.split(",")]
  args.data = args.data or os.path.join(args.shared, "train_images")
  os.makedirs(args.workdir, exist_ok=True)
  images = _images(args.data, args.size, args.workdir)
  if args.estimate:
    est = estimate(args, images)
    total = len(args.seeds) * args.steps * sum(est.values())
    print(json.dumps({"s_per_step": est, "total_h": total / 3600}))
    return 0
  timing = {}
  for seed in args.seeds:
    for impl in IMPLS:
      t = time.time()
      (train_torch(args, seed, images) if impl == "torch"
       else train_ours(args, seed))
      timing[f"{impl}_s{seed}"] = time.time() - t
      print(f"{impl} seed {seed}: {timing[f'{impl}_s{seed}']:.0f} s",
            flush=True)
  if args.train_only:
    return 0
  res = measure(args, images)
  import jax  # noqa: PLC0415
  res.update(
      seeds=args.seeds,
      scale={"size": args.size, "steps": args.steps, "batch": 8,
             "images": int(len(images)),
             "text": f"{len(images):,} training images Lanczos-resized to "
             f"{args.size}x{args.size}, batch 8, {args.steps:,} steps "
             f"({args.steps / -(-len(images) // 8):.1f} epochs of "
             f"{-(-len(images) // 8)} steps, the last batch of "
             f"{len(images) % 8 or 8}), Zero-DCE, seeds "
             f"{', '.join(map(str, args.seeds))}"},
      machine=f"{platform.processor() or platform.machine()}, "
      f"{os.cpu_count()} cores (shared), jax {jax.__version__} on "
      f"{jax.device_count()} host devices",
      date=datetime.date.today().isoformat(),
      command="python -m benchmarks.reproducibility " + " ".join(
          sys.argv[1:] if argv is None else argv),
      notes=args.note)
  res["timing"] = _timing(args, res)
  res["verdict"] = verdict(res)
  res["verdict_text"] = _verdict_text(res["verdict"])
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(res, f, indent=1)
  write_report(res, doc=args.doc, figure=args.figure)
  print(res["verdict_text"])
  return 0


def _timing(args, res) -> dict[str, Any]:
  """Seconds per step of each run, from its own logs where they say."""
  out = {}
  for seed in args.seeds:
    wd = os.path.join(args.workdir, f"ours_s{seed}")
    with open(os.path.join(wd, "metrics.jsonl")) as f:
      last = [json.loads(line) for line in f if line.strip()][-1]
    out[f"ours_s{seed}"] = 8 / last["images_per_s"]
    with open(os.path.join(args.workdir, f"torch_s{seed}",
                           "timing.json")) as f:
      t = json.load(f)
    out[f"torch_s{seed}"] = t["elapsed_s"] / t["steps"]
  text = ", ".join(f"{k} {v:.2f}" for k, v in out.items()) + (
      " s/step (niced, on 2 cores shared with other work)")
  return {"s_per_step": out, "text": text}


if __name__ == "__main__":
  sys.exit(main())
