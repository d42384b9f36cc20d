"""Better than the paper: exposure per scene and signal, colour, highlight
protection and denoising, measured on real photos (the figures of
docs/quality.md).

    python -m benchmarks.quality [--shared ../shared] [--quick] [--every K]
    python -m benchmarks.quality --models zerodce-pp-default --every 2 --merge
    python -m benchmarks.quality --every 2 --add blotch

Every mode is the library's own path (``Enhancer(..)(images,
controls=...)``), the same for every image; nothing looks at a reference.
Models: the bundled ``zerodce-default`` and ``zerodce-pp-default`` and, when
``--shared`` has them, the official Zero-DCE and Zero-DCE++ (converted).

* paired: ``lol_dev`` (100 real LOL low/normal pairs): PSNR, SSIM (the
  papers' protocol, scikit-image's 7x7 uniform window, and dm-pix's
  Gaussian), MAE, the mean-colour angle to the reference, the same after
  rescaling each output to its reference's mean ("GT-mean") and brightness;
* exposure rules (paired): the fixed mean against the per-scene rule, with
  how well each output's brightness follows its reference's;
* synthetic: the LOL normal-light images darkened by a physical model
  (linear exposure x0.05-0.2, shot and read noise, sRGB-like gamma), scored
  against the clean photo;
* unpaired: the 73 official test images (DICM, LIME): NIQE, LOE, the noise in
  the input's flattest dark patches at equal brightness (denoising's
  share), the absolute noise amplitude there against the plain model's
  ("brighter, not noisier": luma and chroma, fine grain and 2-8 px
  blotches, the worst of the four per photo), the share of pixels at >=
  250/255 against the input's on the images with bright regions, and where
  ``--exposure 0.5`` lands on the dark photos;
* the denoiser's blotch stage at a few strengths (SSIM, NIQE, noise: the
  trade behind the default);
* paths (the default photo path's choice): Zero-DCE with its maps at every
  pixel, on 2x2 and 4x4 block means (linearly or guided up-sampled) and
  Zero-DCE++, all with the default controls: quality, the distance of each
  output to the every-pixel one, and time;
* time: seconds per megapixel at 1200x900 on this machine, every mode;
* the OpenCV non-local-means denoiser (``opencv-python-headless``, if
  installed) after the same exposure: the classical baseline.

Writes OUT/quality.json, OUT/quality_grid.jpg (input | plain | default for
night scenes, interiors and a coloured light) and OUT/quality_crops.png
(100% crops of the darkest test photos, plain | default);
``markdown_tables(doc)`` makes the docs' tables. ``--merge`` reruns only
``--models`` (a retrained bundled model) and keeps the other models' rows
of OUT/quality.json, with the same ``--every``; ``--add blotch`` computes
that one section into an existing OUT/quality.json.
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
    ("exposure auto", {"exposure": "auto"}),
    ("colour auto", {"colour": "auto"}),
    ("denoise auto", {"denoise": "auto"}),
    ("exposure mean + colour + denoise", {"exposure": "mean",
                                          "colour": "auto",
                                          "denoise": "auto"}),
    ("default", {"exposure": "auto", "colour": "auto", "denoise": "auto"}),
)
# the other models get these (the full list is for the bundled Zero-DCE)
SHORT = ("plain", "default")
MAIN_MODEL = "zerodce-default"
# the default photo path's candidates: (name, model, Enhancer options)
PATHS = (
    ("Zero-DCE, maps at every pixel", "zerodce-default", {"map_scale": 1}),
    ("Zero-DCE, maps on 2x2 blocks (default)", "zerodce-default",
     {"map_scale": 2}),
    ("Zero-DCE, maps on 2x2 blocks, guided", "zerodce-default",
     {"map_scale": 2, "guided_maps": True}),
    ("Zero-DCE, maps on 4x4 blocks", "zerodce-default", {"map_scale": 4}),
    ("Zero-DCE++ (maps at 1/12)", "zerodce-pp-default", {}),
)


BRIGHT_SHARE = 0.01  # images with >= 1% of pixels >= 0.9: "bright regions"


def _controls(kw):
  from zerodce_jax.apps import quality
  return quality.resolve(
      strength=kw.get("strength"),
      exposure=None if "exposure" not in kw else str(kw["exposure"]),
      denoise=None if "denoise" not in kw else str(kw["denoise"]),
      colour=None if "colour" not in kw else str(kw["colour"]))


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


# luma and two opponent chroma axes (orthonormal)
_OPPONENT = np.array([[3 ** -.5] * 3, [2 ** -.5, 0, -2 ** -.5],
                      [6 ** -.5, -2 * 6 ** -.5, 6 ** -.5]], np.float32)


def _box(v, r):
  """Mean over the (2r+1)-square window (reflected at the borders)."""
  k = 2 * r + 1
  p = np.pad(v, ((r, r), (r, r), (0, 0)), mode="reflect")
  c = np.cumsum(np.cumsum(np.pad(p, ((1, 0), (1, 0), (0, 0))), 0), 1)
  return (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]) / (k * k)


def _flat_patches(x, *, size=32, keep=8):
  """The ``keep`` flattest dark (2/255 < mean < 0.2, not black) patches of
  the input, ``size`` square: where noise shows and nothing else does."""
  lum = x.mean(-1)
  h, w = lum.shape
  cand = []
  for i in range(0, h - size + 1, size):
    for j in range(0, w - size + 1, size):
      p = lum[i:i + size, j:j + size]
      if 1.5 / 255 < p.mean() < 0.2:
        cand.append((float(p.std()), i, j))
  cand.sort()
  return [(i, j) for _, i, j in cand[:keep]]


def _noise_amplitudes(y, patches, *, size=32):
  """The absolute noise a viewer sees in ``y`` on ``patches``: luma grain
  (minus the 3x3 mean), luma blotches (3x3 minus 9x9 mean: 2-8 px), chroma
  grain, chroma blotches; the median over the patches of each."""
  o = y @ _OPPONENT.T
  b1, b4 = _box(o, 1), _box(o, 4)
  grain, blotch = o - b1, b1 - b4
  out = []
  for i, j in patches:
    sl = (slice(i + 4, i + size - 4), slice(j + 4, j + size - 4))
    g, b = grain[sl], blotch[sl]
    out.append([g[..., 0].std(), b[..., 0].std(),
                np.sqrt((g[..., 1:] ** 2).mean()),
                np.sqrt((b[..., 1:] ** 2).mean())])
  return np.median(np.array(out), 0) if out else np.full(4, np.nan)


def _noisier_than(x, y, plain):
  """The worst of the four ``_noise_amplitudes`` ratios, ``y`` over
  ``plain``, in the input's flattest dark patches (nan without any)."""
  patches = _flat_patches(x)
  if not patches:
    return float("nan")
  a, b = _noise_amplitudes(y, patches), _noise_amplitudes(plain, patches)
  return float(np.max(a / np.maximum(b, 1e-6)))


def _mean(rows, key):
  v = np.array([r[key] for r in rows], np.float64)
  v = v[np.isfinite(v)]
  return float(v.mean()) if v.size else float("nan")


def _lol_pairs(lol, every):
  names = sorted(os.listdir(os.path.join(lol, "low")))[::every]
  return [(_read(os.path.join(lol, "low", n)),
           _read(os.path.join(lol, "high", n))) for n in names]


def _channel_mean(y, ref):
  """Each channel rescaled to the reference's channel mean (exposure and
  colour from the reference: the oracle of both)."""
  k = ref.mean((0, 1)) / np.maximum(y.mean((0, 1)), 1e-6)
  return np.clip(y * k, 0, 1)


def paired_rows(en, c, pairs, *, nlm=False):
  """Per pair: PSNR, SSIM (both), MAE, colour angle, the GT-mean and
  channel-mean oracles, the output's and the reference's brightness."""
  from zerodce_jax.core import metrics
  rows = []
  for x, ref in pairs:
    y = en([x], controls=c)[0]
    if nlm:
      y = _nlm(y, x, en)
    gm = _gt_mean(y, ref)
    rows.append({
        "psnr": float(metrics.psnr(y, ref)),
        "ssim_paper": float(metrics.ssim_paper(y, ref)),
        "ssim": float(metrics.ssim(y, ref)),
        "mae": float(metrics.mae_255(y, ref)),
        "colour_angle": float(metrics.colour_angle(y, ref)),
        "psnr_gt_mean": float(metrics.psnr(gm, ref)),
        "ssim_gt_mean": float(metrics.ssim_paper(gm, ref)),
        "psnr_channel_mean": float(metrics.psnr(_channel_mean(y, ref), ref)),
        "brightness": float(metrics.brightness(y)),
        "ref_brightness": float(metrics.brightness(ref))})
  return rows


def _summary(rows):
  """Means, and how the outputs' brightness follows the references':
  the correlation of their logarithms and the mean distance in stops."""
  out = {k: _mean(rows, k) for k in rows[0] if k != "ref_brightness"}
  b = np.log2([max(r["brightness"], 1e-6) for r in rows])
  ref = np.log2([max(r["ref_brightness"], 1e-6) for r in rows])
  out["brightness_corr"] = (float(np.corrcoef(b, ref)[0, 1])
                            if len(rows) > 2 and b.std() > 0 else float("nan"))
  out["brightness_stops"] = float(np.mean(np.abs(b - ref)))
  return out


def paired(models, lol, modes, *, log, every=1):
  pairs = _lol_pairs(lol, every)
  out = {}
  for mname, mode, en, c in _cases(models, modes):
    key = f"{mname} | {mode}"
    out[key] = _summary(paired_rows(en, c, pairs,
                                    nlm=mode.endswith("+ nlm")))
    log(f"paired {key}: "
        + ", ".join(f"{k} {v:.3f}" for k, v in out[key].items()))
  return out, len(pairs)


def by_hand(model, params, images, *, target=0.5, log):
  """``--exposure target`` typed by hand on the test images darker than
  it: how many the curve can reach (their output at the most strength,
  ``quality.MAX_STRENGTH``, is at least as bright) and the share of those
  that land within 0.02 of it."""
  from zerodce_jax.apps import enhance, quality
  en = enhance.Enhancer(model, params)
  c = quality.Controls(exposure=target)
  top = quality.Controls(strength=quality.MAX_STRENGTH)
  dark = [x for x in images if x.mean() < target]
  hits = []
  for x in dark:
    if en([x], controls=top)[0].mean() >= target:
      hits.append(abs(float(en([x], controls=c)[0].mean()) - target) <= 0.02)
  row = {"target": target, "dark": len(dark), "reachable": len(hits),
         "within_0.02": float(np.mean(hits)) if hits else float("nan")}
  log(f"by hand: {row}")
  return row


BLOTCH_SWEEP = (0.0, 1.0, 2.0)  # core.denoise.K_BLOTCH values compared


def blotch_sweep(model, params, pairs, images, *, log, values=BLOTCH_SWEEP):
  """The bundled defaults with the denoiser's blotch stage at each
  ``core.denoise.K_BLOTCH`` in ``values`` (0: off; set for a fresh
  Enhancer): SSIM and PSNR on the pairs, NIQE and the noise against the
  plain output's on the test images: the trade that chose the default."""
  from zerodce_jax.apps import enhance, quality
  from zerodce_jax.core import denoise, niqe
  plain = enhance.Enhancer(model, params)
  ps = [plain([x], controls=quality.PLAIN)[0] for x in images]
  keep = denoise.K_BLOTCH
  out = {}
  try:
    for v in values:
      denoise.K_BLOTCH = v
      en = enhance.Enhancer(model, params)
      row = _summary(paired_rows(en, quality.BUNDLED_DEFAULT, pairs))
      row = {k: row[k] for k in ("psnr", "ssim_paper")}
      ys = [en([x], controls=quality.BUNDLED_DEFAULT)[0] for x in images]
      row["niqe"] = _mean([{"v": float(niqe.niqe(y))} for y in ys], "v")
      r = np.array([_noisier_than(x, y, p)
                    for x, y, p in zip(images, ys, ps)])
      r = r[np.isfinite(r)]
      row.update(noise_vs_plain_median=float(np.median(r)),
                 noise_vs_plain_le1=float(np.mean(r <= 1)))
      out[f"{v:g}"] = row
      log(f"blotch {v:g}: {row}")
  finally:
    denoise.K_BLOTCH = keep
  return out


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


DARKEST = 0.05  # "the darkest JPEGs": input mean below this


def _test_images(test_images, *, count=0, every=1):
  paths = sorted(os.path.join(test_images, d, f)
                 for d in sorted(os.listdir(test_images))
                 for f in sorted(os.listdir(os.path.join(test_images, d))))
  paths = paths[::max(1, len(paths) // count)] if count else paths[::every]
  return paths, [_read(p) for p in paths]


def unpaired(models, images, modes, *, log):
  from zerodce_jax.core import metrics, niqe
  bright = [float(np.mean(x.max(-1) >= 0.9)) >= BRIGHT_SHARE for x in images]
  dark = [float(x.mean()) < DARKEST for x in images]
  out, outputs = {}, {}
  for mname, mode, en, c in _cases(models, modes):
    ys = [en([x], controls=c)[0] for x in images]
    outputs[f"{mname} | {mode}"] = ys
    hl = [100 * (float(np.mean(y.max(-1) >= 250 / 255))
                 - float(np.mean(x.max(-1) >= 250 / 255)))
          for x, y, b in zip(images, ys, bright) if b]
    q = [float(niqe.niqe(y)) for y in ys]
    qd = [v for v, d in zip(q, dark) if d]
    row = {"niqe": _mean([{"v": v} for v in q], "v"),
           "niqe_dark": _mean([{"v": v} for v in qd], "v") if qd
           else float("nan"),
           "dark_images": len(qd),
           "brightness": float(np.mean([y.mean() for y in ys])),
           "highlight_excess_pp_mean": float(np.mean(hl)) if hl else 0.0,
           "highlight_excess_pp_max": float(np.max(hl)) if hl else 0.0,
           "bright_images": int(sum(bright)),
           "loe": float(np.mean([metrics.loe(x, y)
                                 for x, y in zip(images, ys)]))}
    out[f"{mname} | {mode}"] = row
    log(f"unpaired {mname} | {mode}: {row}")
  for mname in models:
    plain, den = f"{mname} | plain", f"{mname} | denoise auto"
    # denoising's share at equal brightness (the same curves without it)
    if plain in outputs and den in outputs:
      na = [_flat_noise(x, y) for x, y in zip(images, outputs[plain])]
      nb = [_flat_noise(x, y) for x, y in zip(images, outputs[den])]
      ratio = [q / p for p, q in zip(na, nb) if p > 0 and np.isfinite(q)]
      out[plain]["flat_noise"] = float(np.nanmean(na))
      out[den]["flat_noise"] = float(np.nanmean(nb))
      out[den]["flat_noise_vs_plain"] = float(np.median(ratio))
    # brighter, not noisier: every mode's absolute noise against plain's
    for key in outputs:
      if key.split(" | ")[0] == mname and key != plain and plain in outputs:
        r = np.array([_noisier_than(x, y, p) for x, y, p in
                      zip(images, outputs[key], outputs[plain])])
        r = r[np.isfinite(r)]
        if r.size:
          out[key].update({"noise_vs_plain_median": float(np.median(r)),
                           "noise_vs_plain_le1": float(np.mean(r <= 1)),
                           "noise_images": int(r.size)})
  return out, len(images)


def timing(models, modes, *, repeats, size, log):
  x = _scene(*size)
  out = {}
  for mname, mode, en, c in _cases(models, modes, official=False):
    sec = _seconds(en, c, x, repeats)
    out[f"{mname} | {mode}"] = {"seconds": sec,
                                "s_per_mp": sec / (size[0] * size[1] / 1e6)}
    log(f"time {mname} | {mode}: {out[f'{mname} | {mode}']}")
  return out


def _scene(h, w):
  """A smooth dark scene with grain, ``h x w`` (the timing input)."""
  rng = np.random.default_rng(0)
  coarse = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8))
  scene = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC),
                     np.float32) / 255 * 0.25
  return np.clip(scene + rng.standard_normal((h, w, 1)).astype(np.float32)
                 * 0.02, 0, 1)


def _seconds(en, c, x, repeats):
  en([x], controls=c)  # compile
  ts = []
  for _ in range(repeats):
    t = time.perf_counter()
    en([x], controls=c)
    ts.append(time.perf_counter() - t)
  return float(np.median(ts))


def paths(models, pairs, images, *, size, repeats, log):
  """The default photo path's candidates (``PATHS``), each with the
  bundled defaults: quality on the pairs and the test images, the PSNR of
  each output against the every-pixel path's (first row), and time."""
  from zerodce_jax.apps import enhance, quality
  from zerodce_jax.core import metrics, niqe
  c = quality.BUNDLED_DEFAULT
  out, first = {}, None
  x_time = _scene(*size)
  for name, mname, opts in PATHS:
    if mname not in models:
      continue
    model, params = models[mname]
    en = enhance.Enhancer(model, params, **opts)
    row = _summary(paired_rows(en, c, pairs))
    row = {k: row[k] for k in ("psnr", "ssim_paper", "colour_angle")}
    ys = [en([x], controls=c)[0] for x in images]
    row["niqe"] = _mean([{"v": float(niqe.niqe(y))} for y in ys], "v")
    if first is None:
      first = ys
    d = [float(metrics.psnr(y, f)) for y, f in zip(ys, first)]
    d = [v for v in d if np.isfinite(v)]
    row["psnr_vs_every_pixel"] = float(np.mean(d)) if d else float("inf")
    row["psnr_vs_every_pixel_min"] = float(np.min(d)) if d else float("inf")
    row["seconds"] = _seconds(en, c, x_time, repeats)
    out[name] = row
    log(f"path {name}: {row}")
  return out


def _tile(images, *, height):
  ims = []
  for c in images:
    im = Image.fromarray((np.clip(c, 0, 1) * 255 + 0.5).astype(np.uint8))
    if height:
      im = im.resize((round(im.width * height / im.height), height),
                     Image.Resampling.LANCZOS)
    ims.append(im)
  row = Image.new("RGB", (sum(i.width for i in ims) + 8 * (len(ims) - 1),
                          ims[0].height), "white")
  xo = 0
  for i in ims:
    row.paste(i, (xo, 0))
    xo += i.width + 8
  return row


def _stack(rows, path, **save):
  width = max(r.width for r in rows)
  out = Image.new("RGB", (width, sum(r.height + 8 for r in rows) - 8),
                  "white")
  yo = 0
  for r in rows:
    out.paste(r, (0, yo))
    yo += r.height + 8
  out.save(path, **save)


def grid_choice(lol_files, test_files, test_images):
  """The grid's rows, chosen by rule, not by eye: two interiors (the first
  LOL pairs), the two darkest night scenes (test images of mean below
  0.15 with light sources: >= 1% of pixels at 0.9) and the test image with
  the strongest colour cast (a coloured light)."""
  from zerodce_jax.core import colour
  rows = [("interior", f) for f in lol_files[:2]]
  night = sorted((float(x.mean()), f) for f, x in zip(test_files, test_images)
                 if x.mean() < 0.15
                 and np.mean(x.max(-1) >= 0.9) >= BRIGHT_SHARE)
  rows += [("night", f) for _, f in night[:2]]
  chosen = {f for _, f in rows}
  cast = sorted((-float(colour.cast_angle(x.mean((0, 1)))), f)
                for f, x in zip(test_files, test_images) if f not in chosen)
  rows += [("coloured light", f) for _, f in cast[:1]]
  return rows


def grid(models, rows, path, *, height=180):
  """input | plain | default for the ``grid_choice`` rows."""
  from zerodce_jax.apps import enhance, quality
  if MAIN_MODEL not in models:
    return
  en = enhance.Enhancer(*models[MAIN_MODEL])
  tiles = []
  for _, f in rows:
    x = _read(f)
    tiles.append(_tile([x, en([x], controls=quality.PLAIN)[0],
                        en([x], controls=quality.BUNDLED_DEFAULT)[0]],
                       height=height))
  _stack(tiles, path, quality=88)


def crop_choice(x, plain, *, size=(200, 300), stride=50):
  """``(y0, x0)`` of the crop: among the darker half of the windows (by
  input mean; not black), the one with the most detail in the plain
  output (mean absolute gradient): shadows with something in them, where
  noise, blocks and lost texture show."""
  h, w = size
  lum = x.mean(-1)
  p = plain.mean(-1)
  g = np.abs(np.diff(p, axis=1))[:-1] + np.abs(np.diff(p, axis=0))[:, :-1]
  wins = [(float(lum[i:i + h, j:j + w].mean()), i, j)
          for i in range(0, max(1, x.shape[0] - h + 1), stride)
          for j in range(0, max(1, x.shape[1] - w + 1), stride)]
  cut = float(np.median([m for m, _, _ in wins]))
  cand = [(float(g[i:i + h, j:j + w].mean()), i, j) for m, i, j in wins
          if 1.5 / 255 < m <= cut] or [(0.0, *wins[0][1:])]
  _, i, j = max(cand)
  return i, j


def crops(models, test_files, test_images, path, *, count=4,
          size=(200, 300)):
  """100% crops of the ``count`` darkest test photos: plain | default."""
  from zerodce_jax.apps import enhance, quality
  if MAIN_MODEL not in models:
    return []
  en = enhance.Enhancer(*models[MAIN_MODEL])
  order = sorted(range(len(test_images)),
                 key=lambda i: float(test_images[i].mean()))[:count]
  tiles, where = [], []
  for i in order:
    x = test_images[i]
    a = en([x], controls=quality.PLAIN)[0]
    b = en([x], controls=quality.BUNDLED_DEFAULT)[0]
    y0, x0 = crop_choice(x, a, size=size)
    sl = (slice(y0, y0 + size[0]), slice(x0, x0 + size[1]))
    tiles.append(_tile([a[sl], b[sl]], height=None))
    where.append({"file": os.path.relpath(test_files[i],
                                          os.path.dirname(os.path.dirname(
                                              test_files[i]))),
                  "mean": float(x.mean()), "crop": [y0, x0, *size]})
  _stack(tiles, path)
  return where


def _fmt(v, spec):
  return "" if v is None or not np.isfinite(v) else format(v, spec)


def markdown_tables(doc) -> str:
  """The docs' tables, from ``quality.json``."""
  st = doc["settings"]
  rule = st.get("scene_rule", {})
  lines = [f"Settings: `--exposure auto`: the scene rule "
           f"({', '.join(f'{k} {v:g}' for k, v in rule.items())}; strength "
           f"at most {st['max_exposure_strength']:g}), `--exposure mean`: "
           f"{st['mean_exposure']:g}, `--colour auto` = {st['auto_colour']:g}"
           f", `--denoise auto` = {st['auto_denoise']:g}, highlight "
           f"shoulder {tuple(st['shoulder'])}.", ""]
  runs = doc.get("runs") or {}
  if any(m != doc["machine"] for m in runs.values()):
    lines += ["Measured in separate runs (`--merge`): " + "; ".join(
        f"`{name}` {m['cpu']}, {m['cores']} cores, {m['date']}"
        for name, m in runs.items()) + ".", ""]
  p = doc["paired"]
  k = st.get("every", 1)
  nth = {2: "2nd", 3: "3rd"}.get(k, f"{k}th")
  sub = f", every {nth} of the folder and of the test images" if k > 1 else ""
  lines += [f"**Real LOL pairs** (`lol_dev`, {doc['counts']['paired']} "
            f"pairs{sub}): SSIM as the papers (7x7 uniform) and dm-pix "
            "(Gaussian 11x11); colour: degrees between the mean colours of "
            "output and reference; GT-mean: each output rescaled to its "
            "reference's mean; channel mean: each channel to the "
            "reference's (the oracles of exposure, and of exposure and "
            "colour).", "",
            "| model | mode | PSNR | SSIM | SSIM (Gaussian) | MAE | colour "
            "(deg) | PSNR GT-mean | SSIM GT-mean | PSNR channel mean | "
            "brightness |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
  for key, r in p.items():
    model, mode = key.split(" | ")
    lines.append(
        f"| {model} | {mode} | {r['psnr']:.2f} | {r['ssim_paper']:.3f} | "
        f"{r['ssim']:.3f} | {r['mae']:.1f} | {r['colour_angle']:.2f} | "
        f"{r['psnr_gt_mean']:.2f} | {r['ssim_gt_mean']:.3f} | "
        f"{r['psnr_channel_mean']:.2f} | {r['brightness']:.3f} |")
  lines += ["", "**Exposure per scene** (the same pairs): how each "
            "output's brightness follows its reference's: the correlation "
            "of their logarithms and the mean distance in stops (lower is "
            "better).", "",
            "| model | mode | brightness | correlation with the reference "
            "| distance (stops) | PSNR |", "|---|---|---|---|---|---|"]
  for key, r in p.items():
    model, mode = key.split(" | ")
    if "brightness_corr" in r and ("exposure" in mode or mode in SHORT):
      lines.append(f"| {model} | {mode} | {r['brightness']:.3f} | "
                   f"{_fmt(r['brightness_corr'], '.2f')} | "
                   f"{r['brightness_stops']:.2f} | {r['psnr']:.2f} |")
  s = doc["synthetic"]
  lines += ["", f"**Synthetic dark captures** ({doc['counts']['synthetic']} "
            "LOL normal-light photos darkened x0.05-0.2 with shot and read "
            "noise), against the clean photo:", "",
            "| model | mode | PSNR | SSIM |", "|---|---|---|---|"]
  for key, r in s.items():
    model, mode = key.split(" | ")
    lines.append(f"| {model} | {mode} | {r['psnr']:.2f} | "
                 f"{r['ssim_paper']:.3f} |")
  u = doc["unpaired"]
  nd = next((r["dark_images"] for r in u.values()), 0)
  lines += ["", f"**Official test images** ({doc['counts']['unpaired']} of "
            f"DICM and LIME): NIQE (lower is better), on all and on the "
            f"{nd} darkest (input mean below {DARKEST:g}); denoising's "
            "share: the high-pass residual in the input's flattest dark "
            "patches against the plain output's at the same brightness "
            "(median per image); brighter, not noisier: the absolute noise "
            "there (luma and chroma, grain and 2-8 px blotches, the worst "
            "of the four) against the plain output's, median per image and "
            "the share of images at most as noisy; highlight excess: "
            "percentage points of pixels at >= 250/255 beyond the input's, "
            "on the images with bright regions.", "",
            "| model | mode | NIQE | NIQE darkest | LOE | brightness | "
            "denoising's share | noise vs plain (median) | at most plain's "
            "| highlight excess mean / max (pp) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
  for key, r in u.items():
    model, mode = key.split(" | ")
    lines.append(
        f"| {model} | {mode} | {r['niqe']:.3f} | "
        f"{_fmt(r.get('niqe_dark'), '.3f')} | {r['loe']:.0f} | "
        f"{r['brightness']:.3f} | {_fmt(r.get('flat_noise_vs_plain'), '.2f')}"
        f" | {_fmt(r.get('noise_vs_plain_median'), '.2f')} | "
        + (f"{100 * r['noise_vs_plain_le1']:.0f}%"
           if "noise_vs_plain_le1" in r else "")
        + f" | {r['highlight_excess_pp_mean']:.2f} / "
        f"{r['highlight_excess_pp_max']:.2f} |")
  if "by_hand" in doc:
    b = doc["by_hand"]
    lines += ["", f"**`--exposure {b['target']:g}` by hand** "
              f"(`{MAIN_MODEL}`): of the {b['dark']} test images darker than "
              f"it, the curve (strength at most {st['max_strength']:g}) "
              f"reaches it on {b['reachable']}; "
              f"{100 * b['within_0.02']:.0f}% of those land within 0.02."]
  if "blotch" in doc:
    lines += ["", "**The denoiser's blotch stage** (`core.denoise.K_BLOTCH`,"
              f" `{MAIN_MODEL}` with its defaults; 0: off): what it trades, "
              "the same pairs and test images.", "",
              "| K_BLOTCH | PSNR | SSIM | NIQE | noise vs plain (median) | "
              "at most plain's |", "|---|---|---|---|---|---|"]
    for v, r in doc["blotch"].items():
      lines.append(f"| {v} | {r['psnr']:.2f} | {r['ssim_paper']:.3f} | "
                   f"{r['niqe']:.3f} | {r['noise_vs_plain_median']:.2f} | "
                   f"{100 * r['noise_vs_plain_le1']:.0f}% |")
  h, w = st["timing_size"]
  if "paths" in doc:
    lines += ["", "**The default photo path**: every path with the bundled "
              "defaults; distance: PSNR of each output against the "
              "every-pixel path's on the test images (mean / worst); time "
              f"at {w}x{h} (median of {st['repeats']}, after compilation).",
              "", "| path | PSNR | SSIM | colour (deg) | NIQE | distance "
              "(dB) | seconds |", "|---|---|---|---|---|---|---|"]
    for name, r in doc["paths"].items():
      dist = ("(itself)" if not np.isfinite(r["psnr_vs_every_pixel"]) else
              f"{r['psnr_vs_every_pixel']:.1f} / "
              f"{r['psnr_vs_every_pixel_min']:.1f}")
      lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim_paper']:.3f} | "
                   f"{r['colour_angle']:.2f} | {r['niqe']:.3f} | {dist} | "
                   f"{r['seconds']:.2f} |")
  t = doc["timing"]
  base = {k.split(" | ")[0]: v["seconds"] for k, v in t.items()
          if k.endswith("| plain")}
  lines += ["", f"**Time** at {w}x{h} (median of "
            f"{st['repeats']}, after compilation):", "",
            "| model | mode | seconds | s/MP | vs plain |",
            "|---|---|---|---|---|"]
  for key, r in t.items():
    model, mode = key.split(" | ")
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
  ap.add_argument("--add", choices=("blotch",),
                  help="compute only this section (the blotch stage's "
                  "sweep) and add it to OUT/quality.json, same --every")
  args = ap.parse_args(argv)
  if args.add:
    return _add_section(args)
  import dataclasses
  from zerodce_jax.apps import quality
  from zerodce_jax.core import exposure
  from benchmarks import harness
  shared = args.shared
  log = lambda m: print(m, flush=True)  # noqa: E731
  models = _models(shared, args.models.split(","))
  quick = args.quick
  modes = list(MODES)
  paired_modes = list(modes)
  try:
    import cv2  # noqa: F401 - the classical baseline, if installed
    paired_modes.append(("exposure auto + nlm", {"exposure": "auto"}))
  except ImportError:
    log("opencv-python-headless is not installed: no NLM baseline")
  if quick:
    models = dict(list(models.items())[:1])
    paired_modes = modes = modes[:1] + modes[-1:]
  lol = os.path.join(shared, "lol_dev")
  counts = {}
  doc = {"machine": harness.machine_info(),
         "settings": {"scene_rule": dataclasses.asdict(exposure.SceneRule()),
                      "mean_exposure": quality.MEAN_EXPOSURE,
                      "max_exposure_strength": quality.AUTO_MAX_STRENGTH,
                      "max_strength": quality.MAX_STRENGTH,
                      "auto_colour": quality.AUTO_COLOUR,
                      "auto_denoise": quality.AUTO_DENOISE,
                      "shoulder": list(quality.HIGHLIGHT_SHOULDER),
                      "every": args.every,
                      "timing_size": [96, 128] if quick else [900, 1200],
                      "repeats": 1 if quick else args.repeats}}
  old = None
  if args.merge:  # before the long run: a JSON it cannot merge into fails now
    old = _load(os.path.join(args.out, "quality.json"))
    _same(old, doc, "settings")
  main_model = MAIN_MODEL in models
  test_dir = os.path.join(shared, "test_images")
  test_files, images = ([], [])
  if os.path.isdir(test_dir):
    test_files, images = _test_images(test_dir, count=4 if quick else 0,
                                      every=args.every)
  if os.path.isdir(lol):
    doc["paired"], counts["paired"] = (
        _quick_paired(models, lol, paired_modes, log) if quick
        else paired(models, lol, paired_modes, log=log, every=args.every))
    doc["synthetic"], counts["synthetic"] = synthetic(
        models, lol, modes, count=4 if quick else 40 // args.every, log=log)
  if images:
    doc["unpaired"], counts["unpaired"] = unpaired(models, images, modes,
                                                   log=log)
    if main_model:
      doc["by_hand"] = by_hand(*models[MAIN_MODEL], images, log=log)
  if main_model and not quick and os.path.isdir(lol) and images:
    doc["blotch"] = blotch_sweep(*models[MAIN_MODEL],
                                 _lol_pairs(lol, args.every), images, log=log)
    doc["paths"] = paths(models, _lol_pairs(lol, args.every), images,
                         size=tuple(doc["settings"]["timing_size"]),
                         repeats=doc["settings"]["repeats"], log=log)
  doc["timing"] = timing(models, modes, repeats=doc["settings"]["repeats"],
                         size=tuple(doc["settings"]["timing_size"]), log=log)
  doc["counts"] = counts
  os.makedirs(args.out, exist_ok=True)
  if main_model and not quick and os.path.isdir(lol) and images:
    lol_files = [os.path.join(lol, "low", n) for n in
                 sorted(os.listdir(os.path.join(lol, "low")))]
    rows = grid_choice(lol_files, test_files, images)
    grid(models, rows, os.path.join(args.out, "quality_grid.jpg"))
    doc["grid"] = [{"kind": kind, "file": os.path.relpath(f, shared)}
                   for kind, f in rows]
    doc["crops"] = crops(models, test_files, images,
                         os.path.join(args.out, "quality_crops.png"))
  if args.merge:
    doc = merge(old, doc, list(models))
  with open(os.path.join(args.out, "quality.json"), "w") as f:
    json.dump(doc, f, indent=1)
  if {"paired", "synthetic", "unpaired"} <= set(doc):
    print(markdown_tables(doc))
  return 0


SECTIONS = ("paired", "synthetic", "unpaired", "timing")
# measured for the main model only: taken from whichever run has them
SINGLE = ("by_hand", "blotch", "paths", "grid", "crops")


def _add_section(args):
  """``--add``: one main-model section into an existing quality.json."""
  path = os.path.join(args.out, "quality.json")
  doc = _load(path)
  if doc["settings"].get("every") != args.every:
    raise SystemExit(f"--add: {path} was measured with --every "
                     f"{doc['settings'].get('every')}, not {args.every}")
  models = _models(args.shared, [MAIN_MODEL])
  _, images = _test_images(os.path.join(args.shared, "test_images"),
                           every=args.every)
  pairs = _lol_pairs(os.path.join(args.shared, "lol_dev"), args.every)
  doc[args.add] = blotch_sweep(*models[MAIN_MODEL], pairs, images,
                               log=lambda m: print(m, flush=True))
  with open(path, "w") as f:
    json.dump(doc, f, indent=1)
  print(markdown_tables(doc))
  return 0


def _load(path):
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise SystemExit(f"--merge: cannot read {path} "
                     f"({type(e).__name__}: {e})") from None


def _same(old, new, part):
  """SystemExit unless ``old[part] == new[part]``."""
  o, n = old.get(part, {}), new.get(part, {})
  if o != n:
    raise SystemExit(f"--merge: the {part} differ from the JSON's "
                     f"({n} vs {o}): rerun every model instead")


def merge(old, new, rerun):
  """``old`` with the rows of the models in ``rerun`` replaced by ``new``'s
  (in the old row order; models new to ``old`` go last), the sections
  computed for the main model only (``SINGLE``) taken from whichever run
  has them.
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
  for section in SINGLE:
    if section in new:
      out[section] = new[section]
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
