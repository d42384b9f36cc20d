"""Better than the paper: exposure, highlight protection and denoising,
measured on real photos (the figures of docs/quality.md).

    python -m benchmarks.quality [--shared ../shared] [--quick] [--every K]
    python -m benchmarks.quality --models zerodce-pp-default --every 2 --merge

Every mode is the library's own path (``Enhancer(..)(images,
controls=...)``), the same for every image; nothing looks at a reference.
Models: the bundled ``zerodce-default`` and ``zerodce-pp-default`` and, when
``--shared`` has them, the official Zero-DCE and Zero-DCE++ (converted).

* paired: ``lol_dev`` (100 real LOL low/normal pairs): PSNR, SSIM (the
  papers' protocol, scikit-image's 7x7 uniform window, and dm-pix's
  Gaussian), MAE, the same after rescaling each output to its reference's
  mean ("GT-mean") and brightness;
* synthetic: the LOL normal-light images darkened by a physical model
  (linear exposure x0.05-0.2, shot and read noise, sRGB-like gamma), scored
  against the clean photo;
* unpaired: the 73 official test images (DICM, LIME): NIQE, LOE, the noise in
  the input's flattest dark patches (high-pass residual of the output) at
  equal brightness, the share of pixels at >= 250/255 against the input's on
  the images with bright regions, and where ``--exposure`` lands;
* time: seconds per megapixel at 1200x900 on this machine, every mode;
* the OpenCV non-local-means denoiser (``opencv-python-headless``, if
  installed) after the same exposure: the classical baseline.

Writes OUT/quality.json and OUT/quality_grid.jpg (input | plain | default
for a few photos); ``markdown_tables(doc)`` makes the docs' tables.
``--merge`` reruns only ``--models`` (a retrained bundled model) and keeps
the other models' rows of OUT/quality.json, with the same ``--every``.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from PIL import Image

from benchmarks import _common

# The modes, in table order: (name, Controls keyword arguments). "default"
# is what the bundled models do with no flag (apps.quality.BUNDLED_DEFAULT).
MODES = (
    ("plain", {}),
    ("strength 2", {"strength": 2.0}),
    ("exposure auto", {"exposure": "auto"}),
    ("denoise auto", {"denoise": "auto"}),
    ("exposure auto + denoise auto", {"exposure": "auto", "denoise": "auto"}),
)
EXPOSURE_SWEEP = ()  # e.g. (0.40, 0.50): more exposure targets, paired
# the other models get these (the full list is for the bundled Zero-DCE)
SHORT = ("plain", "exposure auto + denoise auto")
MAIN_MODEL = "zerodce-default"
# how far an exposure may raise the curves (core.exposure.MAX_STRENGTH):
# the bundled default's controls at each cap, on every 4th pair
EXPOSURE_CAPS = (4.0, 3.0, 2.5, 2.0, 1.5)


BRIGHT_SHARE = 0.01  # images with >= 1% of pixels >= 0.9: "bright regions"


def _controls(kw):
  from zerodce_jax.apps import quality
  return quality.resolve(
      strength=kw.get("strength"),
      exposure=None if "exposure" not in kw else str(kw["exposure"]),
      denoise=None if "denoise" not in kw else str(kw["denoise"]))


def _cases(models, modes, *, official=True):
  """``(model name, mode, enhancer, controls)`` for every model and mode
  measured: the main model runs every mode, the others ``SHORT``;
  ``official=False`` leaves the official models out."""
  from zerodce_jax.apps import enhance
  for mname, (model, params) in models.items():
    if not official and mname.startswith("official"):
      continue
    en = enhance.Enhancer(model, params)
    for mode, kw in modes:
      if mname == MAIN_MODEL or mode in SHORT:
        yield mname, mode, en, _controls(kw)


def _models(shared, names):
  from zerodce_jax.core import models
  from zerodce_jax.formats import convert, weights
  out = {}
  for name in names:
    if name.startswith("official"):
      f = {"official-zerodce": "zerodce_official_epoch99.pth",
           "official-zerodce++": "zerodce_pp_official_epoch99.pth"}[name]
      path = os.path.join(shared, "weights", f)
      if not os.path.isfile(path):
        continue
      params, arch, _ = convert.convert_official(path)
    else:
      params, arch, _ = weights.load_weights(name)
    out[name] = (models.model_from_arch(arch, scale_factor=12), params)
  return out


def _read(path):
  from zerodce_jax.formats import image_io
  return image_io.read_image(path)[0]


def _gt_mean(y, ref):
  """The output rescaled to the reference's mean (the GT-mean protocol)."""
  return np.clip(y * (ref.mean() / max(float(y.mean()), 1e-6)), 0, 1)


def _nlm(y, x, enhancer):
  """OpenCV's non-local means on the enhanced 8-bit image, its strength
  from the input's estimated noise times the curves' mean gain."""
  import cv2
  a, b = enhancer.noise(x)
  sigma_in = float(np.sqrt(max(a * x.mean() + b, 1e-12)))
  gain = float(y.mean() / max(x.mean(), 1e-6))
  h = float(np.clip(255 * sigma_in * gain * 1.0, 1, 40))
  u8 = (np.clip(y, 0, 1) * 255 + 0.5).astype(np.uint8)
  out = cv2.fastNlMeansDenoisingColored(u8, None, h, h, 7, 21)
  return out.astype(np.float32) / 255


def _darken(clean, rng):
  """A clean sRGB photo as a dark capture: linear, times an exposure in
  [0.05, 0.2], Poisson-like shot noise and Gaussian read noise, back to a
  gamma curve."""
  lin = np.power(clean, 2.2)
  k = rng.uniform(0.05, 0.2)
  dark = lin * k
  noisy = dark + rng.standard_normal(dark.shape) * np.sqrt(
      0.01 * dark / 4 + 1e-5)
  return np.power(np.clip(noisy, 0, 1), 1 / 2.2).astype(np.float32)


def _flat_noise(x, y, *, size=16, keep=8):
  """Std of ``y``'s high-pass residual (minus its Gaussian blur, sigma 1.5)
  in the ``keep`` flattest dark (mean < 0.2) ``size``-square patches of
  the input."""
  g = np.exp(-0.5 * (np.arange(-4, 5) / 1.5) ** 2)
  g /= g.sum()
  blur = y
  for ax in (0, 1):
    pad = [(4, 4) if a == ax else (0, 0) for a in range(3)]
    p = np.pad(blur, pad, mode="edge")
    blur = sum(w * np.take(p, np.arange(i, i + y.shape[ax]), axis=ax)
               for i, w in enumerate(g))
  hp = y - blur
  h, w = x.shape[:2]
  cand = []
  for i in range(0, h - size + 1, size):
    for j in range(0, w - size + 1, size):
      p = x[i:i + size, j:j + size]
      if p.mean() < 0.2:
        cand.append((float(p.std()), i, j))
  cand.sort()
  if not cand:
    return float("nan")
  return float(np.mean([hp[i:i + size, j:j + size].std()
                        for _, i, j in cand[:keep]]))


def _mean(rows, key):
  v = np.array([r[key] for r in rows], np.float64)
  v = v[np.isfinite(v)]
  return float(v.mean()) if v.size else float("nan")


def paired(models, lol, modes, *, log, every=1):
  from zerodce_jax.core import metrics
  names = sorted(os.listdir(os.path.join(lol, "low")))[::every]
  pairs = [(_read(os.path.join(lol, "low", n)),
            _read(os.path.join(lol, "high", n))) for n in names]
  out = {}
  for mname, mode, en, c in _cases(models, modes):
    rows = []
    for x, ref in pairs:
      y = en([x], controls=c)[0]
      if mode.endswith("+ nlm"):
        y = _nlm(y, x, en)
      gm = _gt_mean(y, ref)
      rows.append({
          "psnr": float(metrics.psnr(y, ref)),
          "ssim_paper": float(metrics.ssim_paper(y, ref)),
          "ssim": float(metrics.ssim(y, ref)),
          "mae": float(metrics.mae_255(y, ref)),
          "psnr_gt_mean": float(metrics.psnr(gm, ref)),
          "ssim_gt_mean": float(metrics.ssim_paper(gm, ref)),
          "brightness": float(metrics.brightness(y))})
    out[f"{mname} | {mode}"] = {k: _mean(rows, k) for k in rows[0]}
    log(f"paired {mname} | {mode}: "
        + ", ".join(f"{k} {v:.3f}" for k, v in
                    out[f"{mname} | {mode}"].items()))
  return out, len(pairs)


def exposure_caps(model, params, lol, caps, *, log, every=4):
  """The bundled default (``BUNDLED_DEFAULT``) with the exposure's strength
  capped at each of ``caps`` (``core.exposure.MAX_STRENGTH`` set for a
  fresh Enhancer), on every ``every``-th pair: PSNR, SSIM, brightness and
  the share of pairs the cap stops short of the target."""
  from zerodce_jax.apps import enhance, quality
  from zerodce_jax.core import exposure, metrics
  names = sorted(os.listdir(os.path.join(lol, "low")))[::every]
  pairs = [(_read(os.path.join(lol, "low", n)),
            _read(os.path.join(lol, "high", n))) for n in names]
  keep = exposure.MAX_STRENGTH
  out = {}
  try:
    for cap in caps:
      exposure.MAX_STRENGTH = cap
      en = enhance.Enhancer(model, params)
      rows = []
      for x, ref in pairs:
        y = en([x], controls=quality.BUNDLED_DEFAULT)[0]
        rows.append({"psnr": float(metrics.psnr(y, ref)),
                     "ssim_paper": float(metrics.ssim_paper(y, ref)),
                     "brightness": float(metrics.brightness(y)),
                     "short": float(metrics.brightness(y)
                                    < quality.AUTO_EXPOSURE - 0.02)})
      out[f"{cap:g}"] = {k: _mean(rows, k) for k in rows[0]}
      log(f"exposure cap {cap:g}: {out[f'{cap:g}']}")
  finally:
    exposure.MAX_STRENGTH = keep
  return out, len(pairs)


def synthetic(models, lol, modes, *, count, log):
  from zerodce_jax.core import metrics
  rng = np.random.default_rng(0)
  names = sorted(os.listdir(os.path.join(lol, "high")))[:count]
  cases = []
  for n in names:
    clean = _read(os.path.join(lol, "high", n))
    cases.append((_darken(clean, rng), clean))
  out = {}
  for mname, mode, en, c in _cases(models, modes, official=False):
    rows = []
    for x, clean in cases:
      y = en([x], controls=c)[0]
      rows.append({"psnr": float(metrics.psnr(y, clean)),
                   "ssim_paper": float(metrics.ssim_paper(y, clean))})
    out[f"{mname} | {mode}"] = {k: _mean(rows, k) for k in rows[0]}
    log(f"synthetic {mname} | {mode}: {out[f'{mname} | {mode}']}")
  return out, len(cases)


def unpaired(models, test_images, modes, *, count, log, every=1):
  from zerodce_jax.apps import quality
  from zerodce_jax.core import exposure, metrics, niqe
  paths = sorted(os.path.join(test_images, d, f)
                 for d in sorted(os.listdir(test_images))
                 for f in sorted(os.listdir(os.path.join(test_images, d))))
  paths = paths[::max(1, len(paths) // count)] if count else paths[::every]
  images = [_read(p) for p in paths]
  bright = [float(np.mean(x.max(-1) >= 0.9)) >= BRIGHT_SHARE for x in images]
  out, outputs = {}, {}
  for mname, mode, en, c in _cases(models, modes):
    ys = [en([x], controls=c)[0] for x in images]
    outputs[f"{mname} | {mode}"] = ys
    hl = [100 * (float(np.mean(y.max(-1) >= 250 / 255))
                 - float(np.mean(x.max(-1) >= 250 / 255)))
          for x, y, b in zip(images, ys, bright) if b]
    row = {"niqe": _mean([{"v": float(niqe.niqe(y))} for y in ys], "v"),
           "brightness": float(np.mean([y.mean() for y in ys])),
           "highlight_excess_pp_mean": float(np.mean(hl)) if hl else 0.0,
           "highlight_excess_pp_max": float(np.max(hl)) if hl else 0.0,
           "bright_images": int(sum(bright)),
           "loe": float(np.mean([metrics.loe(x, y)
                                 for x, y in zip(images, ys)]))}
    if c.exposure is not None:
      reach = []
      for x, y in zip(images, ys):
        top = en([x], controls=quality.Controls(
            strength=exposure.MAX_STRENGTH))[0].mean()
        if x.mean() < c.exposure < top:
          reach.append(abs(float(y.mean()) - c.exposure) <= 0.02)
      row["exposure_reachable"] = len(reach)
      row["exposure_within_0.02"] = (float(np.mean(reach)) if reach
                                     else float("nan"))
    out[f"{mname} | {mode}"] = row
    log(f"unpaired {mname} | {mode}: {row}")
  # noise at equal brightness: the same exposure with and without denoise
  pairs = [("exposure auto", "exposure auto + denoise auto"),
           ("plain", "denoise auto")]
  for mname in models:
    for a, b in pairs:
      ka, kb = f"{mname} | {a}", f"{mname} | {b}"
      if ka in outputs and kb in outputs:
        na = [_flat_noise(x, y) for x, y in zip(images, outputs[ka])]
        nb = [_flat_noise(x, y) for x, y in zip(images, outputs[kb])]
        ratio = [q / p for p, q in zip(na, nb) if p > 0 and np.isfinite(q)]
        out[kb]["flat_noise"] = float(np.nanmean(nb))
        out[ka]["flat_noise"] = float(np.nanmean(na))
        out[kb]["flat_noise_vs_" + a.replace(" ", "_")] = \
            float(np.median(ratio))
  return out, len(images)


def timing(models, modes, *, repeats, size, log):
  rng = np.random.default_rng(0)
  h, w = size
  coarse = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8))
  scene = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC),
                     np.float32) / 255 * 0.25
  x = np.clip(scene + rng.standard_normal((h, w, 1)).astype(np.float32)
              * 0.02, 0, 1)
  out = {}
  for mname, mode, en, c in _cases(models, modes, official=False):
    en([x], controls=c)  # compile
    ts = []
    for _ in range(repeats):
      t = time.perf_counter()
      en([x], controls=c)
      ts.append(time.perf_counter() - t)
    out[f"{mname} | {mode}"] = {"seconds": float(np.median(ts)),
                                "s_per_mp": float(np.median(ts))
                                / (h * w / 1e6)}
    log(f"time {mname} | {mode}: {out[f'{mname} | {mode}']}")
  return out


def grid(models, shared, path, *, height=150):
  """input | plain | default rows for a few LOL and DICM photos."""
  from zerodce_jax.apps import enhance, quality
  name = "zerodce-default"
  if name not in models:
    return
  model, params = models[name]
  en = enhance.Enhancer(model, params)
  files = [os.path.join(shared, "lol_dev", "low", f) for f in
           sorted(os.listdir(os.path.join(shared, "lol_dev", "low")))[:3]]
  files += [os.path.join(shared, "test_images", "DICM", f)
            for f in ("01.jpg", "12.jpg")]
  default = _controls({"exposure": "auto", "denoise": "auto"})
  rows = []
  for f in files:
    x = _read(f)
    cols = [x, en([x], controls=quality.PLAIN)[0],
            en([x], controls=default)[0]]
    ims = []
    for c in cols:
      im = Image.fromarray((np.clip(c, 0, 1) * 255 + 0.5).astype(np.uint8))
      ims.append(im.resize((round(im.width * height / im.height), height),
                           Image.Resampling.LANCZOS))
    row = Image.new("RGB", (sum(i.width for i in ims) + 8 * 2, height),
                    "white")
    xo = 0
    for i in ims:
      row.paste(i, (xo, 0))
      xo += i.width + 8
    rows.append(row)
  width = max(r.width for r in rows)
  out = Image.new("RGB", (width, sum(r.height + 8 for r in rows) - 8),
                  "white")
  yo = 0
  for r in rows:
    out.paste(r, (0, yo))
    yo += r.height + 8
  out.save(path, quality=88)


def markdown_tables(doc) -> str:
  """The docs' tables, from ``quality.json``."""
  cap = doc["settings"].get("max_exposure_strength")
  lines = [f"Settings: `--exposure auto` = "
           f"{doc['settings']['auto_exposure']}"
           + (f" (strength at most {cap:g})" if cap else "")
           + f", `--denoise auto` = "
           f"{doc['settings']['auto_denoise']}, highlight shoulder "
           f"{tuple(doc['settings']['shoulder'])}.", ""]
  runs = doc.get("runs") or {}
  if any(m != doc["machine"] for m in runs.values()):
    lines += ["Measured in separate runs (`--merge`): " + "; ".join(
        f"`{name}` {m['cpu']}, {m['cores']} cores, {m['date']}"
        for name, m in runs.items()) + ".", ""]
  p = doc["paired"]
  k = doc["settings"].get("every", 1)
  nth = {2: "2nd", 3: "3rd"}.get(k, f"{k}th")
  sub = f", every {nth} of the folder and of the test images" if k > 1 else ""
  lines += [f"**Real LOL pairs** (`lol_dev`, {doc['counts']['paired']} "
            f"pairs{sub}): SSIM as the papers (7x7 uniform) and dm-pix "
            "(Gaussian 11x11); GT-mean: each output rescaled to its "
            "reference's mean.", "",
            "| model | mode | PSNR | SSIM | SSIM (Gaussian) | MAE | "
            "PSNR GT-mean | SSIM GT-mean | brightness |",
            "|---|---|---|---|---|---|---|---|---|"]
  for k, r in p.items():
    model, mode = k.split(" | ")
    lines.append(f"| {model} | {mode} | {r['psnr']:.2f} | "
                 f"{r['ssim_paper']:.3f} | {r['ssim']:.3f} | {r['mae']:.1f} "
                 f"| {r['psnr_gt_mean']:.2f} | {r['ssim_gt_mean']:.3f} | "
                 f"{r['brightness']:.3f} |")
  s = doc["synthetic"]
  lines += ["", f"**Synthetic dark captures** ({doc['counts']['synthetic']} "
            "LOL normal-light photos darkened x0.05-0.2 with shot and read "
            "noise), against the clean photo:", "",
            "| model | mode | PSNR | SSIM |", "|---|---|---|---|"]
  for k, r in s.items():
    model, mode = k.split(" | ")
    lines.append(f"| {model} | {mode} | {r['psnr']:.2f} | "
                 f"{r['ssim_paper']:.3f} |")
  if "exposure_caps" in doc:
    lines += ["", "**How far an exposure may raise the curves** "
              f"(`{MAIN_MODEL}`, its default controls, every 4th pair of "
              f"`lol_dev`: {doc['counts']['exposure_caps']} pairs; short: "
              "the share of pairs the cap leaves more than 0.02 below the "
              "target):", "",
              "| strength at most | PSNR | SSIM | brightness | short |",
              "|---|---|---|---|---|"]
    for c, r in doc["exposure_caps"].items():
      lines.append(f"| {c} | {r['psnr']:.2f} | {r['ssim_paper']:.3f} | "
                   f"{r['brightness']:.3f} | {100 * r['short']:.0f}% |")
  u = doc["unpaired"]
  lines += ["", f"**Official test images** ({doc['counts']['unpaired']} of "
            "DICM and LIME): NIQE (lower is better); flat-patch noise, the "
            "high-pass residual in the input's flattest dark patches (ratio: "
            "median per image against the same mode without `--denoise`, at "
            "the same brightness); highlight excess, percentage points of "
            "pixels at >= 250/255 beyond the input's, on the images with "
            "bright regions; exposure: share within 0.02 of the target of "
            "the images the curve can reach.", "",
            "| model | mode | NIQE | LOE | brightness | flat-patch noise | "
            "noise ratio | highlight excess mean / max (pp) | exposure within "
            "0.02 |", "|---|---|---|---|---|---|---|---|---|"]
  for k, r in u.items():
    model, mode = k.split(" | ")
    ratio = next((v for kk, v in r.items()
                  if kk.startswith("flat_noise_vs_")), None)
    lines.append(
        f"| {model} | {mode} | {r['niqe']:.3f} | {r['loe']:.0f} | "
        f"{r['brightness']:.3f} | "
        + (f"{r['flat_noise']:.4f}" if "flat_noise" in r else "") + " | "
        + (f"{ratio:.2f}" if ratio is not None else "") + " | "
        f"{r['highlight_excess_pp_mean']:.2f} / "
        f"{r['highlight_excess_pp_max']:.2f} | "
        + (f"{100 * r['exposure_within_0.02']:.0f}% of "
           f"{r['exposure_reachable']}" if "exposure_reachable" in r
           else "") + " |")
  t = doc["timing"]
  h, w = doc["settings"]["timing_size"]
  base = {k.split(" | ")[0]: v["seconds"] for k, v in t.items()
          if k.endswith("| plain")}
  lines += ["", f"**Time** at {w}x{h} (median of "
            f"{doc['settings']['repeats']}, after compilation):", "",
            "| model | mode | seconds | s/MP | vs plain |",
            "|---|---|---|---|---|"]
  for k, r in t.items():
    model, mode = k.split(" | ")
    lines.append(f"| {model} | {mode} | {r['seconds']:.2f} | "
                 f"{r['s_per_mp']:.2f} | {r['seconds'] / base[model]:.2f}x "
                 "|")
  return "\n".join(lines)


def main(argv=None):
  ap = _common.parser(__doc__)
  ap.add_argument("--models", default="zerodce-default,zerodce-pp-default,"
                  "official-zerodce,official-zerodce++")
  ap.add_argument("--every", type=int, default=1,
                  help="every K-th LOL pair and test image, 40/K synthetic "
                  "captures (the tables say how many): a shorter run")
  ap.add_argument("--merge", action="store_true",
                  help="rerun only --models and keep the other models' rows "
                  "of OUT/quality.json (after retraining one model); the "
                  "JSON records the machine and date of each model's run")
  args = ap.parse_args(argv)
  from zerodce_jax.apps import quality
  from zerodce_jax.core import exposure
  from benchmarks import harness
  shared = args.shared
  log = lambda m: print(m, flush=True)
  models = _models(shared, args.models.split(","))
  quick = args.quick
  modes = list(MODES)
  paired_modes = modes + [(f"exposure {e}", {"exposure": e})
                          for e in EXPOSURE_SWEEP]
  try:
    import cv2  # noqa: F401 - the classical baseline, if installed
    paired_modes.append(("exposure auto + nlm", {"exposure": "auto"}))
  except ImportError:
    log("opencv-python-headless is not installed: no NLM baseline")
  if quick:
    models = dict(list(models.items())[:1])
    paired_modes = modes[:1] + modes[-1:]
    modes = modes[:1] + modes[-1:]
  lol = os.path.join(shared, "lol_dev")
  counts = {}
  doc = {"machine": harness.machine_info(),
         "settings": {"auto_exposure": quality.AUTO_EXPOSURE,
                      "max_exposure_strength": exposure.MAX_STRENGTH,
                      "auto_denoise": quality.AUTO_DENOISE,
                      "shoulder": list(quality.HIGHLIGHT_SHOULDER),
                      "every": args.every,
                      "timing_size": [96, 128] if quick else [900, 1200],
                      "repeats": 1 if quick else args.repeats}}
  old = None
  if args.merge:  # before the long run: a JSON it cannot merge into fails now
    old = _load(os.path.join(args.out, "quality.json"))
    _same(old, doc, "settings")
  if os.path.isdir(lol):
    doc["paired"], counts["paired"] = (
        _quick_paired(models, lol, paired_modes, log) if quick
        else paired(models, lol, paired_modes, log=log, every=args.every))
    doc["synthetic"], counts["synthetic"] = synthetic(
        models, lol, modes, count=4 if quick else 40 // args.every, log=log)
    main_model, main_params = next(iter(models.values()))
    if not args.merge or MAIN_MODEL in models:
      doc["exposure_caps"], counts["exposure_caps"] = exposure_caps(
          main_model, main_params, lol, (2.0,) if quick else EXPOSURE_CAPS,
          log=log, every=34 if quick else 4)
  test_images = os.path.join(shared, "test_images")
  if os.path.isdir(test_images):
    doc["unpaired"], counts["unpaired"] = unpaired(
        models, test_images, modes, count=4 if quick else 0, log=log,
        every=args.every)
  doc["timing"] = timing(models, modes, repeats=doc["settings"]["repeats"],
                         size=tuple(doc["settings"]["timing_size"]), log=log)
  doc["counts"] = counts
  if args.merge:
    doc = merge(old, doc, list(models))
  os.makedirs(args.out, exist_ok=True)
  with open(os.path.join(args.out, "quality.json"), "w") as f:
    json.dump(doc, f, indent=1)
  if not quick and os.path.isdir(lol):
    grid(models, shared, os.path.join(args.out, "quality_grid.jpg"))
  if {"paired", "synthetic", "unpaired"} <= set(doc):
    print(markdown_tables(doc))
  return 0


SECTIONS = ("paired", "synthetic", "unpaired", "timing")


def _load(path):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise SystemExit(f"--merge: cannot read {path} "
                     f"({type(e).__name__}: {e})") from None


def _same(old, new, part):
  """SystemExit unless ``old[part] == new[part]`` (``exposure_caps`` aside:
  one model's)."""
  o = {k: v for k, v in old.get(part, {}).items() if k != "exposure_caps"}
  n = {k: v for k, v in new.get(part, {}).items() if k != "exposure_caps"}
  if o != n:
    raise SystemExit(f"--merge: the {part} differ from the JSON's "
                     f"({n} vs {o}): rerun every model instead")


def merge(old, new, rerun):
  """``old`` with the rows of the models in ``rerun`` replaced by ``new``'s
  (in the old row order; models new to ``old`` go last), sections computed
  for one model only (``exposure_caps``) taken from whichever run has them.
  ``runs`` records each model's machine and date.

  Raises:
    SystemExit: the two runs' settings or sample counts differ (their rows
      would not be comparable).
  """
  for part in ("settings", "counts"):
    _same(old, new, part)
  out = dict(old)
  runs = dict(old.get("runs") or {})
  for section in SECTIONS:
    rows = {}
    for k, v in old.get(section, {}).items():
      model = k.split(" | ")[0]
      if model not in rerun:
        rows[k] = v
      else:
        rows.update({kk: vv for kk, vv in new[section].items()
                     if kk.split(" | ")[0] == model and kk not in rows})
    rows.update({k: v for k, v in new.get(section, {}).items()
                 if k not in rows})
    out[section] = rows
  for model in {k.split(" | ")[0] for k in out["paired"]}:
    runs.setdefault(model, old["machine"])
  runs.update({m: new["machine"] for m in rerun})
  out["runs"] = runs
  if "exposure_caps" in new:
    out["exposure_caps"] = new["exposure_caps"]
    out["counts"] = {**out["counts"],
                     "exposure_caps": new["counts"]["exposure_caps"]}
  return out


def _quick_paired(models, lol, modes, log):
  """``paired`` on the first 3 pairs (the test suite's smoke run)."""
  import tempfile
  names = sorted(os.listdir(os.path.join(lol, "low")))[:3]
  with tempfile.TemporaryDirectory() as d:
    for sub in ("low", "high"):
      os.makedirs(os.path.join(d, sub))
      for n in names:
        os.symlink(os.path.join(lol, sub, n), os.path.join(d, sub, n))
    return paired(models, d, modes, log=log)


if __name__ == "__main__":
  raise SystemExit(main())
