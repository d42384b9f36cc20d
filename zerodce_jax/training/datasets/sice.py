"""SICE multi-exposure sequences (Part1 for training, Part2 for test).

``train``: every image of every Part1 sequence (under- and over-exposed, as
Zero-DCE trains on), with the sequence's reference as ``label``.
``test``: the Part2 images darker than their sequence's reference (mean
intensity below it), each paired with the reference: the low/normal-light
pairs of the paper's Table 2.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow_datasets as tfds

from zerodce_jax.training.datasets import common


class Sice(tfds.core.GeneratorBasedBuilder):
  """SICE: ``image``, ``label`` (reference), ``sequence``, ``file_name``."""
  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = common.expected_layout("sice")

  def _info(self):
    return self.dataset_info_from_configs(
        description="SICE multi-exposure sequences (Cai et al. 2018).",
        features=tfds.features.FeaturesDict({
            "image": common.image_feature(),
            "label": common.image_feature(),
            "sequence": tfds.features.Text(),
            "file_name": tfds.features.Text(),
        }))

  def _split_generators(self, dl_manager):
    root = str(dl_manager.manual_dir)
    p1, p2 = common.require_dirs(root, "sice", "SICE/Dataset_Part1",
                                 "SICE/Dataset_Part2")
    return {"train": self._generate_examples(p1, only_darker=False),
            "test": self._generate_examples(p2, only_darker=True)}

  def _generate_examples(self, part, only_darker):
    label_dir = os.path.join(part, "Label")
    if not os.path.isdir(label_dir):
      raise common.LayoutError(f"{label_dir}: not found.\n"
                               + common.expected_layout("sice"))
    labels = {os.path.splitext(f)[0]: os.path.join(label_dir, f)
              for f in os.listdir(label_dir)}
    sequences = sorted(d for d in os.listdir(part)
                       if d != "Label" and os.path.isdir(os.path.join(part, d)))
    if not sequences:
      raise common.LayoutError(f"{part}: no sequence folders.\n"
                               + common.expected_layout("sice"))
    for seq in sequences:
      if seq not in labels:
        raise common.LayoutError(f"{os.path.join(part, seq)}: no reference "
                                 f"{label_dir}/{seq}.jpg.\n"
                                 + common.expected_layout("sice"))
      label = common.rgb_image(labels[seq])
      label_mean = np.asarray(label).mean()
      for path in common.images_in(os.path.join(part, seq), "sice"):
        image = common.rgb_image(path)
        if only_darker and np.asarray(image).mean() >= label_mean:
          continue
        if image.size != label.size:
          raise common.LayoutError(
              f"{path} is {image.width}x{image.height}, its reference "
              f"{labels[seq]} {label.width}x{label.height}")
        name = os.path.basename(path)
        yield f"{seq}/{name}", {"image": image, "label": label,
                                "sequence": seq, "file_name": name}
