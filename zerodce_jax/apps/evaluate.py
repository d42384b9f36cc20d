"""``zerodce eval``: enhance a test set and score it with the papers' figures.

Paired sets (a folder of low-light inputs and a folder of references matched
by relative path, extension ignored): PSNR, SSIM, MAE (0-255). SSIM in two
protocols (``core.metrics``), chosen by ``ssim``: ``"both"`` (default) gives
the columns ``ssim`` (dm-pix, 11x11 Gaussian window: the column every table
of this project reported before, kept under its name) and ``ssim_paper``
(scikit-image's default, 7x7 uniform window: the protocol of the quoted
LOL figures, 14.86 dB / 0.562 for the official Zero-DCE); ``"gaussian"`` or
``"paper"`` give one of them. Unpaired sets:
mean brightness before/after and LOE. Per-image rows plus the mean, as a
terminal table, JSON and CSV.
"""

from __future__ import annotations

import csv
import json
import os
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from zerodce_jax.apps import enhance as enhance_lib
from zerodce_jax.formats import image_io
from zerodce_jax.core import metrics, niqe

__all__ = ["match_pairs", "paired_row", "score_paired", "score_unpaired", "evaluate_paired",
           "evaluate_unpaired", "tfds_examples",
           "compare_models", "summarise", "format_table", "write_results"]


class EvalError(ValueError):
  """The test set is malformed; the message names the files."""


def _by_stem(root: str) -> dict[str, str]:
  out = {}
  for p in image_io.list_images(root):
    key = os.path.splitext(os.path.relpath(p, root))[0]
    out[key] = p
  return out


def match_pairs(low_dir: str, high_dir: str) -> list[tuple[str, str, str]]:
  """``(name, low_path, high_path)`` for files with the same relative stem.

  Raises:
    EvalError: some files have no partner (all are listed).
  """
  low, high = _by_stem(low_dir), _by_stem(high_dir)
  missing_high = sorted(set(low) - set(high))
  missing_low = sorted(set(high) - set(low))
  if missing_high or missing_low:
    lines = [f"{low[k]}: no reference in {high_dir}" for k in missing_high]
    lines += [f"{high[k]}: no input in {low_dir}" for k in missing_low]
    raise EvalError("unmatched files:\n  " + "\n  ".join(lines))
  return [(k, low[k], high[k]) for k in sorted(low)]


def _read_pairs(pairs: Sequence[tuple[str, str, str]]
                ) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
  for name, low_path, high_path in pairs:
    low, _ = image_io.read_image(low_path)
    high, _ = image_io.read_image(high_path)
    if low.shape != high.shape:
      raise EvalError(f"{low_path} is {low.shape[1]}x{low.shape[0]} but "
                      f"{high_path} is {high.shape[1]}x{high.shape[0]}")
    yield name, low, high


def _check_ssim(ssim: str) -> None:
  if ssim not in metrics.SSIM_PROTOCOLS:
    raise ValueError(f"ssim must be one of {metrics.SSIM_PROTOCOLS}, got "
                     f"{ssim!r}")


def paired_row(name: str, low: np.ndarray, out: np.ndarray,
               high: np.ndarray, *, ssim: str = "both") -> dict:
  """One image's paired figures: ``psnr``, ``ssim`` (Gaussian) and/or
  ``ssim_paper`` (as ``ssim`` says), ``mae``, ``colour_angle`` (degrees
  between the mean colours of output and reference) and brightness
  in/out."""
  _check_ssim(ssim)
  row = {"image": name, "psnr": float(metrics.psnr(out, high))}
  if ssim in ("gaussian", "both"):
    row["ssim"] = float(metrics.ssim(out, high))
  if ssim in ("paper", "both"):
    row["ssim_paper"] = float(metrics.ssim_paper(out, high))
  row.update({"mae": float(metrics.mae_255(out, high)),
              "colour_angle": float(metrics.colour_angle(out, high)),
              "brightness_in": float(metrics.brightness(low)),
              "brightness_out": float(metrics.brightness(out))})
  return row


def score_paired(enhancer: enhance_lib.Enhancer,
                 examples: Iterable[tuple[str, np.ndarray, np.ndarray]], *,
                 ssim: str = "both") -> list[dict]:
  """Per-image PSNR/SSIM/MAE and brightness of ``(name, low, high)``
  examples ([H, W, 3] floats in [0, 1], equal shapes); ``ssim``: which SSIM
  protocol(s), see the module docstring."""
  _check_ssim(ssim)
  return [paired_row(name, low, enhancer([low])[0], high, ssim=ssim)
          for name, low, high in examples]


def score_unpaired(enhancer: enhance_lib.Enhancer,
                   examples: Iterable[tuple[str, np.ndarray]]) -> list[dict]:
  """Per-image brightness before/after, LOE and NIQE (of the output as an
  8-bit image; ``core.niqe``, lower is better; NaN when the image is
  smaller than two NIQE blocks) of ``(name, low)`` examples."""
  rows = []
  for name, low in examples:
    out = enhancer([low])[0]
    rows.append({"image": name,
                 "brightness_in": float(metrics.brightness(low)),
                 "brightness_out": float(metrics.brightness(out)),
                 "loe": metrics.loe(low, out),
                 "niqe": _niqe_or_nan(out)})
  return rows


def _niqe_or_nan(image: np.ndarray) -> float:
  try:
    return float(niqe.niqe(image))
  except ValueError:  # too small for the 96x96 blocks
    return float("nan")


def evaluate_paired(enhancer: enhance_lib.Enhancer,
                    pairs: Sequence[tuple[str, str, str]], *,
                    ssim: str = "both") -> list[dict]:
  """``score_paired`` of ``(name, low_path, high_path)`` files.

  Raises:
    EvalError: a pair differs in size (both files named).
  """
  return score_paired(enhancer, _read_pairs(pairs), ssim=ssim)


def evaluate_unpaired(enhancer: enhance_lib.Enhancer,
                      paths: Sequence[tuple[str, str]]) -> list[dict]:
  """``score_unpaired`` of ``(name, path)`` files."""
  return score_unpaired(enhancer, ((name, image_io.read_image(path)[0])
                                   for name, path in paths))


def tfds_examples(name: str, *, data_dir: str, split: str = "test"
                  ) -> tuple[bool, Iterator[tuple]]:
  """A dataset built by ``zerodce data build NAME`` as eval examples.

  Returns:
    ``(paired, examples)``: ``paired`` when the dataset has references
    (``label``: LOL, SICE); examples are ``(file_name, low[, high])`` with
    [H, W, 3] float32 images in [0, 1].

  Raises:
    EvalError: a pair differs in size.
  """
  from zerodce_jax.training import datasets  # noqa: PLC0415 - tfds only when asked
  source = datasets.data_source(name, data_dir=data_dir, split=split)
  paired = "label" in source.dataset_info.features

  def examples():
    for i in range(len(source)):
      ex = source[i]
      fname = ex["file_name"]
      fname = fname.decode() if isinstance(fname, bytes) else str(fname)
      low = ex["image"].astype(np.float32) / 255.0
      if not paired:
        yield fname, low
        continue
      high = ex["label"].astype(np.float32) / 255.0
      if low.shape != high.shape:
        raise EvalError(f"tfds:{name}/{split} {fname}: image is "
                        f"{low.shape[1]}x{low.shape[0]} but its label is "
                        f"{high.shape[1]}x{high.shape[0]}")
      yield fname, low, high

  return paired, examples()


def compare_models(ours: enhance_lib.Enhancer, reference: enhance_lib.Enhancer,
                   paths: Sequence[tuple[str, str]]
                   ) -> tuple[list[dict], list[tuple[np.ndarray, ...]]]:
  """Two models on the same images: how close their outputs are.

  Returns:
    ``(rows, triples)``: per image the PSNR/SSIM of ``ours`` against
    ``reference`` and the mean brightness of input and both outputs; and the
    ``(input, ours, reference)`` images.
  """
  rows, triples = [], []
  for name, path in paths:
    low, _ = image_io.read_image(path)
    a, b = ours([low])[0], reference([low])[0]
    rows.append({"image": name, "psnr_vs_ref": float(metrics.psnr(a, b)),
                 "ssim_vs_ref": float(metrics.ssim(a, b)),
                 "brightness_in": float(metrics.brightness(low)),
                 "brightness_ours": float(metrics.brightness(a)),
                 "brightness_ref": float(metrics.brightness(b))})
    triples.append((low, a, b))
  return rows, triples


def summarise(rows: Sequence[dict]) -> dict[str, Any]:
  """Mean of every numeric column (PSNR, NIQE: finite values only)."""
  if not rows:
    return {}
  out = {"image": f"mean of {len(rows)}"}
  for k, v in rows[0].items():
    if isinstance(v, float):
      vals = np.array([r[k] for r in rows], np.float64)
      vals = vals[np.isfinite(vals)] if k in ("psnr", "niqe") else vals
      out[k] = float(vals.mean()) if vals.size else float("inf")
  return out


def format_table(rows: Sequence[dict], summary: dict) -> str:
  """A fixed-width table of the rows and the mean (counts as integers)."""
  if not rows:
    return "(no images)"
  cols = list(rows[0])
  width = max(12, *(len(str(r["image"])) for r in [*rows, summary]))
  widths = [max(10, len(c)) + 2 for c in cols[1:]]
  head = f"{'image':{width}}" + "".join(
      f"{c:>{w}}" for c, w in zip(cols[1:], widths))
  lines = [head, "-" * len(head)]
  for r in list(rows) + [summary]:
    lines.append(f"{str(r['image']):{width}}" + "".join(
        f"{r[c]:{w}d}" if isinstance(r[c], int) else f"{r[c]:{w}.4f}"
        for c, w in zip(cols[1:], widths)))
  return "\n".join(lines)


def write_results(rows: Sequence[dict], summary: dict, *,
                  json_path: str | None = None,
                  csv_path: str | None = None, meta: dict | None = None):
  """Writes ``{"meta", "mean", "images"}`` JSON and a per-image CSV."""
  if json_path:
    with open(json_path, "w") as f:
      json.dump({"meta": meta or {}, "mean": summary, "images": list(rows)},
                f, indent=2)
  if csv_path and rows:
    with open(csv_path, "w", newline="") as f:
      w = csv.DictWriter(f, fieldnames=list(rows[0]))
      w.writeheader()
      w.writerows(list(rows) + [summary])
