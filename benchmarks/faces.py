"""Face detection in the dark: AP before and after each enhancer (the
papers' high-level test; the table of docs/faces.md).

    python -m benchmarks.faces --faces-dir DARKFACE [--limit N] [--out DIR]
    python -m benchmarks.faces --standin [--out DIR]

``--faces-dir``: a folder in the DARK FACE layout (``image/NAME.png``,
``label/NAME.txt``), the user's; without it (and without ``--standin``) the
benchmark says so and skips. ``--standin``: not DARK FACE, a small stand-in
built here from the two public-domain portraits that ship in this
project's test dependencies (scikit-image's astronaut, Eileen Collins;
matplotlib's Grace Hopper), each at three sizes and three exposures of a
physical model (``darken``), with face boxes drawn by hand on the clean
photos and scaled with them. Every figure it gives is labelled as such.

One detector and one setting for every method (``apps.faces.CenterFace``,
the same code as ``zerodce eval --faces``): the raw input; the bundled
``zerodce-default`` plain and with its defaults; the official Zero-DCE and
Zero-DCE++ converted from ``--shared`` (plain, as their defaults); and a
gamma curve whose exponent gives each image the fixed mean brightness
of ``--exposure mean``. Per method: AP at IoU 0.5 (pooled over all images),
recall and counts at the detector's score threshold, and the seconds per
image of enhancement and of detection (warm: the first image of each size
is run once untimed). Writes OUT/faces.json; ``markdown_table(doc)`` makes
the docs' table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from benchmarks import _common

# name -> (where the photo ships, face box drawn by hand on the clean photo:
# x1 y1 x2 y2, inclusive pixels, hairline to chin, cheek to cheek)
STANDIN_PHOTOS = {
    "astronaut": ("scikit-image: skimage.data.astronaut() (NASA, public "
                  "domain)", (182, 68, 270, 174)),
    "grace_hopper": ("matplotlib: sample_data/grace_hopper.jpg (U.S. Navy, "
                     "public domain)", (172, 134, 358, 330)),
}
STANDIN_SCALES = (1.0, 0.5, 0.25)  # faces of about 100, 50 and 25 pixels
STANDIN_EXPOSURES = (0.02, 0.01, 0.005)  # linear exposure factors
SHOT_NOISE, READ_NOISE = 0.03, 0.003  # of the darkening model
TIMING_SIZE = (720, 1080)  # DARK FACE's images: 1080x720


def standin_photo(name: str) -> tuple[np.ndarray, tuple[int, ...]]:
  """One stand-in portrait, uint8 ``[H, W, 3]``, and its face box."""
  if name == "astronaut":
    from skimage import data
    image = data.astronaut()
  else:
    import matplotlib
    from PIL import Image
    path = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data",
                        "sample_data", "grace_hopper.jpg")
    with Image.open(path) as im:
      image = np.asarray(im.convert("RGB"))
  return image, STANDIN_PHOTOS[name][1]


def darken(image: np.ndarray, *, exposure: float, seed: int) -> np.ndarray:
  """A clean 8-bit photo as a dark 8-bit capture: linearised (gamma 2.2),
  times ``exposure``, shot noise (std ``SHOT_NOISE * sqrt(signal)``) and
  read noise (``READ_NOISE``), clipped, gamma 1/2.2, rounded to 8 bits
  (``training.input_pipeline.exposure_mix`` at one fixed exposure)."""
  from zerodce_jax.training import input_pipeline
  x = image.astype(np.float32)[None] / 255.0
  stop = math.log2(exposure)
  dark = input_pipeline.exposure_mix(x, key=(seed,), stops=(stop, stop),
                                     shot_noise=SHOT_NOISE,
                                     read_noise=READ_NOISE)[0]
  return np.round(np.clip(dark, 0, 1) * 255).astype(np.uint8)


def _resize(image: np.ndarray, scale: float) -> np.ndarray:
  from PIL import Image
  h, w = image.shape[:2]
  size = (max(1, round(w * scale)), max(1, round(h * scale)))
  return np.asarray(Image.fromarray(image).resize(
      size, Image.Resampling.LANCZOS))


def make_standin(folder: str) -> int:
  """Writes the stand-in set in the DARK FACE layout under ``folder``;
  returns the number of images (one face each)."""
  from PIL import Image
  os.makedirs(os.path.join(folder, "image"), exist_ok=True)
  os.makedirs(os.path.join(folder, "label"), exist_ok=True)
  n = 0
  for photo in STANDIN_PHOTOS:
    clean, box = standin_photo(photo)
    for scale in STANDIN_SCALES:
      small = _resize(clean, scale)
      x1, y1, x2, y2 = (round(v * scale) for v in box)
      h, w = small.shape[:2]
      x2, y2 = min(x2, w - 1), min(y2, h - 1)
      for exposure in STANDIN_EXPOSURES:
        name = f"{photo}_x{scale:.2f}_e{exposure:.3f}"
        Image.fromarray(darken(small, exposure=exposure, seed=n)).save(
            os.path.join(folder, "image", name + ".png"))
        with open(os.path.join(folder, "label", name + ".txt"), "w") as f:
          f.write(f"1\n{x1} {y1} {x2} {y2}\n")
        n += 1
  return n


def gamma_curve(images, *, target: float):
  """The baseline: each image raised to the power ``p`` in [0.05, 1] whose
  output has mean brightness ``target`` (bisection on ``p``)."""
  out = []
  for x in images:
    x = np.clip(np.asarray(x, np.float32), 0, 1)
    lo, hi = 0.05, 1.0
    if float(np.power(x, hi).mean()) < target:
      for _ in range(30):  # mean(x^p) falls as p rises
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if float(np.power(x, mid).mean()) > target \
            else (lo, mid)
    out.append(np.power(x, hi))
  return out


def _methods(shared: str, log):
  """``(name, callable [image] -> [enhanced])`` in table order."""
  from zerodce_jax.apps import enhance, quality
  from zerodce_jax.core import models
  from zerodce_jax.formats import convert, weights

  def enhancer(params, arch, controls):
    model = models.model_from_arch(arch, scale_factor=12)
    en = enhance.Enhancer(model, params, controls=controls)
    return lambda images: en(images)

  params, arch, _ = weights.load_weights("zerodce-default")
  out = [("raw input", None),
         ("zerodce-default plain", enhancer(
             params, arch, quality.resolve(plain=True, bundled=True))),
         ("zerodce-default defaults", enhancer(
             params, arch, quality.resolve(bundled=True)))]
  for name, f in (("official Zero-DCE", "zerodce_official_epoch99.pth"),
                  ("official Zero-DCE++", "zerodce_pp_official_epoch99.pth")):
    path = os.path.join(shared, "weights", f)
    if not os.path.isfile(path):
      log(f"{path}: not found, no {name} row")
      continue
    p, a, _ = convert.convert_official(path)
    out.append((name, enhancer(p, a, quality.resolve(bundled=False))))
  target = quality.MEAN_EXPOSURE
  out.append((f"gamma curve to mean {target:g}",
              lambda images: gamma_curve(images, target=target)))
  return out


def _timed(fn, x, seen: set):
  """``(fn(x), seconds)``; the first call of each size runs once untimed."""
  if x.shape not in seen:
    seen.add(x.shape)
    fn(x)
  t = time.perf_counter()
  y = fn(x)
  return y, time.perf_counter() - t


def run(faces_dir: str, *, shared: str, limit: int = 0,
        groups: bool = False, log=print) -> dict:
  """Every method on the set in ``faces_dir``; the JSON document."""
  from zerodce_jax.apps import faces
  from benchmarks import harness
  load_before = os.getloadavg()[0]
  files = faces.dark_face_files(faces_dir)
  if limit:
    files = files[:limit]
  n_faces = faces.check_labels(files)
  examples = list(faces.read_examples(files))
  detector = faces.CenterFace()
  methods = _methods(shared, log)
  records = []
  for name, method in methods:
    total = faces.Tally()
    by = {}
    t_enh, t_det, bright = [], [], []
    seen_e, seen_d = set(), set()
    for fname, image, boxes in examples:
      if method is None:
        out = image
      else:
        (out,), dt = _timed(lambda x, m=method: m([x]), image, seen_e)
        out = np.asarray(out)
        t_enh.append(dt)
      dets, dt = _timed(detector, out, seen_d)
      t_det.append(dt)
      bright.append(float(out.mean()))
      total.add(detections=dets, truth=boxes)
      if groups:
        key = fname.rsplit("_e", 1)[1]
        by.setdefault(key, faces.Tally()).add(detections=dets, truth=boxes)
    rec = {"method": name, "ap": total.ap(), "recall": total.recall(),
           "found": total.found(), "detections": total.detections(),
           "faces": total.faces, "brightness": statistics.fmean(bright),
           "detect_s": statistics.median(t_det),
           "enhance_s": statistics.median(t_enh) if t_enh else 0.0}
    if groups:
      rec["recall_by_exposure"] = {k: t.recall() for k, t in sorted(
          by.items(), reverse=True)}
    records.append(rec)
    log(f"{name}: AP {rec['ap']:.3f}, recall {rec['recall']:.3f} "
        f"({rec['found']}/{rec['faces']}), {rec['detections']} detections, "
        f"enhance {rec['enhance_s'] * 1e3:.0f} ms, detect "
        f"{rec['detect_s'] * 1e3:.0f} ms per image")
  machine = harness.machine_info()
  # other work on the machine slows the timings: the 1-minute load average
  # before and after the run says how busy it was
  machine["load_average"] = [load_before, os.getloadavg()[0]]
  return {"machine": machine,
          "settings": {"detector": "CenterFace (apps.faces.CenterFace)",
                       "detector_sha256": faces.CENTERFACE_SHA256,
                       "score_threshold": faces.SCORE_THRESHOLD,
                       "detection_floor": faces.DETECTION_FLOOR,
                       "nms_iou": faces.NMS_IOU,
                       "iou_threshold": faces.IOU_THRESHOLD},
          "data": {"images": len(examples), "faces": n_faces},
          "timing_1080x720": _timing(detector, methods, log),
          "records": records}


def _timing(detector, methods, log) -> dict:
  """Seconds per 1080x720 image (DARK FACE's size), median of 3 warm runs:
  the detector and each enhancer."""
  clean, _ = standin_photo("astronaut")
  from PIL import Image
  h, w = TIMING_SIZE
  x = np.asarray(Image.fromarray(darken(clean, exposure=0.01, seed=0))
                 .resize((w, h)), np.float32) / 255.0
  out = {}
  for name, fn in [("detector", detector)] + [
      (n, (lambda f: lambda y: f([y]))(m))
      for n, m in methods if m is not None]:
    fn(x)
    times = []
    for _ in range(3):
      t = time.perf_counter()
      fn(x)
      times.append(time.perf_counter() - t)
    out[name] = statistics.median(times)
    log(f"1080x720: {name} {out[name] * 1e3:.0f} ms")
  return out


def markdown_table(doc: dict) -> str:
  """The docs' tables of ``faces.json``."""
  d, s = doc["data"], doc["settings"]
  head = (f"**{d['description']}**: {d['images']} images, {d['faces']} "
          f"faces. Detector: {s['detector'].split(' (')[0]}, recall and "
          f"counts at score {s['score_threshold']:g}, AP over detections "
          f"scoring at least {s['detection_floor']:g}, IoU "
          f"{s['iou_threshold']:g}.")
  rows = [head, "",
          "| method | AP@0.5 | recall | found | detections | mean "
          "brightness | enhance ms/image | detect ms/image |",
          "|---|---|---|---|---|---|---|---|"]
  for r in doc["records"]:
    rows.append(f"| {r['method']} | {r['ap']:.3f} | {r['recall']:.3f} | "
                f"{r['found']}/{r['faces']} | {r['detections']} | "
                f"{r['brightness']:.3f} | "
                f"{r['enhance_s'] * 1e3:.0f} | {r['detect_s'] * 1e3:.0f} |")
  if all("recall_by_exposure" in r for r in doc["records"]):
    keys = list(doc["records"][0]["recall_by_exposure"])
    rows += ["", "Recall by linear exposure of the stand-in captures:", "",
             "| method | " + " | ".join(f"x{k}" for k in keys) + " |",
             "|---" * (len(keys) + 1) + "|"]
    for r in doc["records"]:
      rows.append(f"| {r['method']} | " + " | ".join(
          f"{r['recall_by_exposure'][k]:.2f}" for k in keys) + " |")
  t = doc.get("timing_1080x720")
  if t:
    rows += ["", "Seconds per 1080x720 image (DARK FACE's size), warm: "
             + ", ".join(f"{k} {v:.2f}" for k, v in t.items()) + "."]
  load = doc["machine"].get("load_average")
  if load:
    rows += ["", f"Load average (1 min) before and after the run: "
             f"{load[0]:.1f}, {load[1]:.1f} on {doc['machine']['cores']} "
             "cores; above the core count, other work shared the CPU and "
             "the times are slower than on an idle machine."]
  return "\n".join(rows)


def main(argv=None) -> int:
  ap = argparse.ArgumentParser(description=__doc__,
                               formatter_class=argparse.RawTextHelpFormatter)
  ap.add_argument("--faces-dir", help="a folder in the DARK FACE layout "
                  "(image/NAME.png, label/NAME.txt)")
  ap.add_argument("--standin", action="store_true",
                  help="the stand-in set (not DARK FACE; see above)")
  ap.add_argument("--limit", type=int, default=0,
                  help="the first N images only (0: all)")
  ap.add_argument("--out", default="benchmarks/results",
                  help="folder for faces.json")
  ap.add_argument("--shared", default=str(_common.shared_dir()),
                  help="../shared (the official weights)")
  args = ap.parse_args(argv)
  if not args.faces_dir and not args.standin:
    print("benchmarks.faces: skipped: no --faces-dir (a folder in the DARK "
          "FACE layout: image/NAME.png, label/NAME.txt); --standin runs on "
          "a small stand-in that is not DARK FACE")
    return 0
  log = lambda m: print(m, flush=True)
  if args.standin:
    with tempfile.TemporaryDirectory() as tmp:
      make_standin(tmp)
      doc = run(tmp, shared=args.shared, limit=args.limit, groups=True,
                log=log)
    doc["data"]["description"] = (
        "Stand-in, not DARK FACE: 2 public-domain portraits (" + "; ".join(
            v[0] for v in STANDIN_PHOTOS.values()) + ") at "
        f"{len(STANDIN_SCALES)} sizes (x" + ", x".join(
            f"{s:g}" for s in STANDIN_SCALES) + ") and "
        f"{len(STANDIN_EXPOSURES)} linear exposures (x" + ", x".join(
            f"{e:g}" for e in STANDIN_EXPOSURES) + f") with shot noise "
        f"{SHOT_NOISE:g} and read noise {READ_NOISE:g}, one hand-drawn "
        "face box each")
    doc["data"]["standin"] = True
  else:
    if not os.path.isdir(args.faces_dir):
      print(f"benchmarks.faces: {args.faces_dir}: no such folder",
            file=sys.stderr)
      return 2
    doc = run(args.faces_dir, shared=args.shared, limit=args.limit, log=log)
    where = os.path.basename(os.path.abspath(args.faces_dir))
    doc["data"]["description"] = (
        f"DARK FACE layout at {where}"
        + (f", first {args.limit} images" if args.limit else ""))
    doc["data"]["standin"] = False
  os.makedirs(args.out, exist_ok=True)
  path = os.path.join(args.out, "faces.json")
  with open(path, "w") as f:
    json.dump(doc, f, indent=2)
  print(markdown_table(doc))
  print(f"wrote {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
