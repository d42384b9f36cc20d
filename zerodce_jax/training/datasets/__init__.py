"""TFDS builders for the datasets of the Zero-DCE papers (manual downloads).

Importing this package registers the builders, so that
``tfds.builder(NAME, data_dir=...)`` finds them. None downloads anything: each
reads a folder you fill by hand (``manual_dir``); when it is missing or laid
out differently, the error shows the expected layout. Builds write
``array_record`` files, read back with ``tfds.data_source`` (random access,
NumPy out, no TensorFlow needed).

| name | splits | content |
| --- | --- | --- |
| ``sice`` | train (Part1), test (Part2) | multi-exposure sequences with their reference image as ``label`` |
| ``lol`` | train (our485), test (eval15) | low/normal-light pairs |
| ``dicm``, ``lime``, ``mef``, ``npe``, ``vv`` | test | unpaired low-light images |
| ``dark_face`` | train | low-light images, face boxes when the label files are present |
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow_datasets as tfds

from zerodce_jax.training.datasets.common import (DATASETS, LayoutError,
                                                  expected_layout)
from zerodce_jax.training.datasets.dark_face import DarkFace
from zerodce_jax.training.datasets.lol import Lol
from zerodce_jax.training.datasets.sice import Sice
from zerodce_jax.training.datasets.unpaired import Dicm, Lime, Mef, Npe, Vv

__all__ = ["DATASETS", "LayoutError", "build", "data_source",
           "expected_layout", "DarkFace", "Lol", "Sice", "Dicm", "Lime",
           "Mef", "Npe", "Vv"]


def build(name: str, *, manual_dir: str, data_dir: str) -> Any:
  """Builds dataset ``name`` (registered by this package's imports) from ``manual_dir`` into ``data_dir``
  (array_record files); returns the builder."""
  if name not in DATASETS:
    raise ValueError(f"unknown dataset {name!r}; known: "
                     f"{', '.join(DATASETS)}")
  if not os.path.isdir(manual_dir):
    raise LayoutError(f"{manual_dir}: no such folder.\n"
                      + expected_layout(name))
  if not os.listdir(manual_dir):  # TFDS would fail with a bare assertion
    raise LayoutError(f"{manual_dir}: empty folder.\n"
                      + expected_layout(name))
  builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir))
  return builder


def data_source(name: str, *, data_dir: str, split: str):
  """Random-access source of a built dataset (NumPy examples, no TF)."""
  return tfds.data_source(name, data_dir=data_dir, split=split)
