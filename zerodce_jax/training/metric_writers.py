"""Where training metrics go: JSONL, CSV and TensorBoard event files."""

from __future__ import annotations

import csv
import json
import os
from typing import Mapping

__all__ = ["MetricWriter"]


class MetricWriter:
  """Appends scalar metrics to ``metrics.jsonl``, ``metrics.csv`` and (when
  tensorboardX is installed) TensorBoard event files under ``tensorboard/``."""

  def __init__(self, workdir: str, *, enabled: bool = True):
    self.enabled = enabled
    self._jsonl = self._csv = self._tb = None
    self._columns: list[str] | None = None
    if not enabled:
      return
    self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
    self._csv_path = os.path.join(workdir, "metrics.csv")
    try:
      from tensorboardX import SummaryWriter  # noqa: PLC0415
      self._tb = SummaryWriter(os.path.join(workdir, "tensorboard"))
    except ImportError:
      self._tb = None

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    """Records one row of scalars for ``step``."""
    if not self.enabled:
      return
    row = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
    self._jsonl.write(json.dumps(row) + "\n")
    self._jsonl.flush()
    new = not os.path.exists(self._csv_path)
    if self._columns is None:
      self._columns = list(row)
    with open(self._csv_path, "a", newline="") as f:
      w = csv.DictWriter(f, fieldnames=self._columns, extrasaction="ignore")
      if new:
        w.writeheader()
      w.writerow(row)
    if self._tb is not None:
      for k, v in row.items():
        if k != "step":
          self._tb.add_scalar(k, v, step)
      self._tb.flush()

  def close(self) -> None:
    if self._jsonl:
      self._jsonl.close()
    if self._tb is not None:
      self._tb.close()
