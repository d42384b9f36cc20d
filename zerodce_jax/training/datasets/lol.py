"""LOL: 500 low/normal-light pairs (our485 for training, eval15 for test)."""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from zerodce_jax.training.datasets import common


class Lol(tfds.core.GeneratorBasedBuilder):
  """LOL pairs: ``image`` (low light), ``label`` (normal light)."""
  VERSION = tfds.core.Version("1.0.0")
  MANUAL_DOWNLOAD_INSTRUCTIONS = common.expected_layout("lol")

  def _info(self):
    return self.dataset_info_from_configs(
        description="LOL: paired low/normal-light images (Wei et al. 2018).",
        features=tfds.features.FeaturesDict({
            "image": common.image_feature(),
            "label": common.image_feature(),
            "file_name": tfds.features.Text(),
        }))

  def _split_generators(self, dl_manager):
    root = str(dl_manager.manual_dir)
    train = common.require_dirs(root, "lol", "LOL/our485/low",
                                "LOL/our485/high")
    test = common.require_dirs(root, "lol", "LOL/eval15/low",
                               "LOL/eval15/high")
    return {"train": self._generate_examples(*train),
            "test": self._generate_examples(*test)}

  def _generate_examples(self, low_dir, high_dir):
    for low in common.images_in(low_dir, "lol"):
      name = os.path.basename(low)
      high = os.path.join(high_dir, name)
      if not os.path.isfile(high):
        raise common.LayoutError(f"{low}: no pair {high}.\n"
                                 + common.expected_layout("lol"))
      yield name, {"image": common.rgb_image(low),
                   "label": common.rgb_image(high), "file_name": name}
