"""``zerodce sweep report``: every variant of a sweep evaluated side by side.

Reads ``W/variants.json`` (written by ``training.sweep.run_sweep``), scores
each trained variant as ``zerodce eval`` does (``apps.evaluate``: PSNR, SSIM,
MAE on a paired set; brightness and LOE on unpaired images, by default the
bundled sample image) and writes ``W/report.json``, ``W/report.md`` (a table
with each variant's final loss terms and scores) and ``W/report_grid.png``
(rows of input | each variant, like the papers' ablation figures).
Images are float32 HWC in [0, 1] throughout.
"""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any, Sequence

import jax
import numpy as np
from PIL import Image, ImageDraw

from zerodce_jax.apps import enhance as enhance_lib
from zerodce_jax.apps import evaluate
from zerodce_jax.core import metrics, models
from zerodce_jax.formats import atomic, image_io, weights as weights_lib

__all__ = ["ReportError", "load_sweep", "final_losses", "report",
           "markdown_table", "grid_image"]

TERMS = ("spa", "exp", "col", "tv")


class ReportError(ValueError):
  """Not a sweep folder, or nothing to report; the message says which."""


def load_sweep(workdir: str) -> dict[str, Any]:
  """The ``variants.json`` of a sweep folder.

  Raises:
    ReportError: missing or not a sweep's.
  """
  path = os.path.join(workdir, "variants.json")
  try:
    with open(path) as f:
      doc = json.load(f)
  except FileNotFoundError:
    raise ReportError(f"{path}: not found (is {workdir} a `zerodce sweep` "
                      "--workdir?)") from None
  except json.JSONDecodeError as e:
    raise ReportError(f"{path}: not JSON ({e})") from None
  if not isinstance(doc, dict) or not isinstance(doc.get("variants"), list):
    raise ReportError(f"{path}: not a sweep's variants.json")
  return doc


def final_losses(folder: str) -> dict[str, float]:
  """The last logged row of ``folder/metrics.jsonl`` (loss, terms, step),
  or ``{}``."""
  path = os.path.join(folder, "metrics.jsonl")
  last = None
  if os.path.exists(path):
    with open(path) as f:
      for line in f:
        if line.strip():
          last = line
  if last is None:
    return {}
  row = json.loads(last)
  return {k: row[k] for k in ("step", "loss", *TERMS, "grad_norm")
          if k in row}


def _read_pairs(pairs):
  out = []
  for name, low_path, high_path in pairs:
    low, _ = image_io.read_image(low_path)
    high, _ = image_io.read_image(high_path)
    if low.shape != high.shape:
      raise evaluate.EvalError(
          f"{low_path} is {low.shape[1]}x{low.shape[0]} but {high_path} is "
          f"{high.shape[1]}x{high.shape[0]}")
    out.append((name, low, high))
  return out


def _thumbnail(rgb: np.ndarray, side: int) -> np.ndarray:
  h, w = rgb.shape[:2]
  scale = side / max(h, w)
  if scale >= 1:
    return rgb
  size = (max(1, round(w * scale)), max(1, round(h * scale)))
  im = Image.fromarray(image_io.from_float(rgb, 8)).resize(
      size, Image.Resampling.LANCZOS)
  return np.asarray(im, np.float32) / 255.0


def grid_image(inputs: Sequence[np.ndarray],
               columns: Sequence[tuple[str, Sequence[np.ndarray]]], *,
               gap: int = 4, label_height: int = 14) -> np.ndarray:
  """Rows of ``input | column 1 | column 2 ...`` under a row of labels.

  Args:
    inputs: the input images (float ``[H, W, 3]``; sizes may differ).
    columns: ``(label, outputs)``, one output per input.
    gap: white pixels between cells.
    label_height: height of the label row.

  Returns:
    float32 ``[H, W, 3]`` in [0, 1].
  """
  cols = [("input", list(inputs))] + [(n, list(o)) for n, o in columns]
  width = max(im.shape[1] for im in inputs)
  heights = [im.shape[0] for im in inputs]
  total_w = len(cols) * width + (len(cols) - 1) * gap
  total_h = label_height + sum(heights) + len(heights) * gap
  canvas = Image.new("RGB", (total_w, total_h), (255, 255, 255))
  draw = ImageDraw.Draw(canvas)
  for c, (label, images) in enumerate(cols):
    x = c * (width + gap)
    text = label if len(label) * 6 <= width else label[:max(1, width // 6)]
    draw.text((x + 2, 1), text, fill=(0, 0, 0))
    y = label_height + gap
    for im, h in zip(images, heights):
      canvas.paste(Image.fromarray(image_io.from_float(im, 8)), (x, y))
      y += h + gap
  return np.asarray(canvas, np.float32) / 255.0


def _machine() -> str:
  """CPU model, cores and JAX backend (as ``benchmarks`` record them)."""
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next((line.split(":", 1)[1].strip() for line in f
                  if line.startswith("model name")), cpu)
  except OSError:
    pass
  dev = jax.devices()[0]
  return (f"{cpu}, {os.cpu_count()} cores, JAX {jax.__version__} on "
          f"{dev.platform} ({dev.device_kind})")


def _fmt(v: Any, spec: str = ".4f") -> str:
  if v is None:
    return "-"
  if isinstance(v, float):
    return format(v, spec)
  return str(v)


def markdown_table(doc: dict[str, Any]) -> str:
  """The report's table (markdown) from a ``report.json`` document."""
  rows = doc["variants"]
  paired = any(r.get("psnr") is not None for r in rows)
  unpaired = any(r.get("loe") is not None for r in rows)
  head = ["variant", "status", "step", "loss", *TERMS]
  if paired:
    head += ["PSNR", "SSIM", "MAE"]
  head += ["brightness"]
  if unpaired:
    head += ["LOE"]
  lines = ["| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]
  for r in rows:
    f = r.get("final") or {}
    cells = [r["variant"], r["status"], _fmt(f.get("step")),
             _fmt(f.get("loss")), *(_fmt(f.get(t)) for t in TERMS)]
    if paired:
      cells += [_fmt(r.get("psnr"), ".2f"), _fmt(r.get("ssim"), ".3f"),
                _fmt(r.get("mae"), ".2f")]
    cells += [_fmt(r.get("brightness"), ".3f")]
    if unpaired:
      cells += [_fmt(r.get("loe"), ".1f")]
    lines.append("| " + " | ".join(cells) + " |")
  inp = doc.get("input") or {}
  note = ["Loss: the weighted total at the last logged step; the terms "
          "unweighted, a dash where a term is not in that variant's loss."]
  if paired:
    note.append("PSNR/SSIM/MAE (0-255): the paired set.")
  note.append(f"Brightness (mean of the outputs; the inputs' "
              f"{inp.get('brightness', float('nan')):.3f})"
              + (" and LOE: the unpaired set." if unpaired
                 else ": the paired inputs."))
  if any(r.get("brightness") is None for r in rows):
    note.append("No scores: the variant has no weights (diverged or not "
                "finished).")
  lines.append("\n" + " ".join(note))
  return "\n".join(lines)


def report(workdir: str, *, paired: Sequence[str] | None = None,
           images: str | None = None, scale_factor: int = 12,
           grid_images: int = 4, grid_side: int = 192) -> dict[str, Any]:
  """Evaluates every trained variant of a sweep and writes the report.

  Args:
    workdir: the sweep's folder.
    paired: ``(low_dir, high_dir)``, scored with PSNR/SSIM/MAE (files
      matched by relative path, as ``zerodce eval``).
    images: a folder of unpaired images, scored with brightness and LOE;
      without ``paired`` or ``images``, the bundled sample image.
    scale_factor: Zero-DCE++ variants' down-scaling factor (as ``zerodce
      eval``).
    grid_images: rows of the grid PNG (the first images of the set).
    grid_side: longest side of each grid cell in pixels.

  Returns:
    The ``report.json`` document: ``variants`` (one row per variant:
    status, final loss terms, scores), ``input``, ``meta`` and ``files``.

  Raises:
    ReportError: not a sweep folder, or no variant has weights.
    evaluate.EvalError: unmatched or mismatched pairs.
  """
  doc = load_sweep(workdir)
  examples = _read_pairs(evaluate.match_pairs(*paired)) if paired else []
  if images:
    unpaired = [(os.path.relpath(p, images), image_io.read_image(p)[0])
                for p in image_io.list_images(images)]
  elif not paired:
    path = weights_lib.asset_path(weights_lib.SAMPLE_IMAGE)
    unpaired = [(os.path.basename(path), image_io.read_image(path)[0])]
  else:
    unpaired = []
  lows = [low for _, low, _ in examples] or [low for _, low in unpaired]
  thumbs = [_thumbnail(x, grid_side) for x in lows[:grid_images]]
  rows, columns = [], []
  for v in doc["variants"]:
    row = {"variant": v["name"], "group": v.get("group"),
           "arch": v.get("arch"), "status": v.get("status"),
           "overrides": v.get("overrides", {}),
           "diverged_at_step": v.get("diverged_at_step"),
           "final": final_losses(os.path.join(workdir, v["name"])),
           "psnr": None, "ssim": None, "mae": None, "brightness": None,
           "loe": None}
    rows.append(row)
    if not v.get("weights"):
      continue
    params, arch, _ = weights_lib.load_weights(
        os.path.join(workdir, v["weights"]))
    model = models.model_from_arch(arch, scale_factor=scale_factor)
    enhancer = enhance_lib.Enhancer(model, jax.device_put(params))
    if examples:
      s = evaluate.summarise(evaluate.score_paired(enhancer, examples))
      row.update(psnr=s["psnr"], ssim=s["ssim"], mae=s["mae"],
                 brightness=s["brightness_out"])
    if unpaired:
      s = evaluate.summarise(evaluate.score_unpaired(enhancer, unpaired))
      row.update(loe=s["loe"], brightness=s["brightness_out"])
    columns.append((v["name"], enhancer(thumbs) if thumbs else []))
  if not columns:
    raise ReportError(f"{workdir}: no variant has weights yet (statuses: "
                      + ", ".join(f"{v['name']} {v.get('status')}"
                                  for v in doc["variants"]) + ")")
  src = unpaired or [(n, low) for n, low, _ in examples]
  bright_in = float(np.mean([metrics.brightness(x)
                             for _, x in src]))
  files = {k: os.path.join(workdir, name) for k, name in (
      ("json", "report.json"), ("md", "report.md"),
      ("grid", "report_grid.png"))}
  out = {
      "variants": rows, "input": {"brightness": bright_in},
      "meta": {"workdir": os.path.abspath(workdir),
               "paired": list(paired) if paired else None,
               "images": images or (None if paired else "bundled sample"),
               "num_paired": len(examples), "num_unpaired": len(unpaired),
               "scale_factor": scale_factor,
               "date": time.strftime("%Y-%m-%d"),
               "machine": _machine()},
      "files": files}
  atomic.write_bytes(files["json"], (json.dumps(out, indent=2) + "\n")
                     .encode())
  sets = []
  if examples:
    sets.append(f"{len(examples)} paired image(s) from {paired[0]}")
  if unpaired:
    sets.append(f"{len(unpaired)} unpaired image(s) from "
                f"{out['meta']['images']}")
  md = (f"# Sweep report: {os.path.basename(os.path.abspath(workdir))}\n\n"
        f"{' and '.join(sets)}; {out['meta']['date']}, "
        f"{out['meta']['machine']}.\n\n"
        f"{markdown_table(out)}\n\n![input | each variant](report_grid.png)\n")
  atomic.write_bytes(files["md"], md.encode())
  if thumbs:
    image_io.write_image(files["grid"], grid_image(thumbs, columns),
                         image_io.ImageInfo(bit_depth=8, gray=False,
                                            alpha=None, format="png"))
  return out
