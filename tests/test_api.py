"""The public surface: importable names, keyword-only options."""

import inspect

import pytest

import zerodce_jax


def test_all_is_importable():
  for name in zerodce_jax.__all__:
    assert hasattr(zerodce_jax, name), name


# functions whose array arguments are positional; everything else keyword-only
POSITIONAL = {
    "le_curve": {"image", "a"},
    "apply_curves": {"image", "maps"},
    "exposure_control_official": {"enhanced"},
    "exposure_control_paper": {"enhanced"},
    "color_constancy_official": {"enhanced"},
    "color_constancy_paper": {"enhanced"},
    "illumination_smoothness_official": {"maps"},
    "illumination_smoothness_paper": {"maps"},
    "spatial_consistency_official": set(),  # asymmetric pair: all keyword
    "spatial_consistency_paper": set(),
    "total_loss": set(),
}


@pytest.mark.parametrize("name", sorted(POSITIONAL))
def test_options_are_keyword_only(name):
  fn = getattr(zerodce_jax, name)
  fn = getattr(fn, "__wrapped__", fn)
  params = inspect.signature(fn).parameters.values()
  positional = {p.name for p in params
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)}
  assert positional == POSITIONAL[name]
