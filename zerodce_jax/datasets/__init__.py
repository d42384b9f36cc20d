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

from zerodce_jax.datasets.common import (DATASETS, LayoutError, build,
                                         data_source, expected_layout)
from zerodce_jax.datasets.dark_face import DarkFace
from zerodce_jax.datasets.lol import Lol
from zerodce_jax.datasets.sice import Sice
from zerodce_jax.datasets.unpaired import Dicm, Lime, Mef, Npe, Vv

__all__ = ["DATASETS", "LayoutError", "build", "data_source",
           "expected_layout", "DarkFace", "Lol", "Sice", "Dicm", "Lime",
           "Mef", "Npe", "Vv"]
