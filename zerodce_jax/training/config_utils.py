"""Config files: load ``configs/NAME.py[:ARG]``, apply ``--config.x=y``
overrides, lock, and write the resolved config as JSON.

A config file defines ``get_config(arg=None) -> ml_collections.ConfigDict``.
Overrides are parsed by the type of the field they replace (bool, int,
float, str, tuple/list via ``ast.literal_eval``); an unknown field is an error
(the config is locked), so a typo cannot silently do nothing.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
from typing import Any, Sequence

import ml_collections

__all__ = ["load_config", "apply_overrides", "parse_override_args",
           "config_to_json"]


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads ``path/to/file.py`` or ``path/to/file.py:arg``."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such config file")
  mod_spec = importlib.util.spec_from_file_location(
      f"_zerodce_config_{abs(hash(os.path.abspath(path)))}", path)
  module = importlib.util.module_from_spec(mod_spec)
  mod_spec.loader.exec_module(module)
  if not hasattr(module, "get_config"):
    raise ValueError(f"{path}: defines no get_config(arg=None)")
  config = module.get_config(arg or None) if arg else module.get_config()
  config.lock()
  return config


def _convert(raw: str, current: Any) -> Any:
  if isinstance(current, bool):
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
      return True
    if low in ("0", "false", "no", "off"):
      return False
    raise ValueError(f"expected a boolean, got {raw!r}")
  if isinstance(current, int):
    return int(raw)
  if isinstance(current, float):
    return float(raw)
  if isinstance(current, str) or current is None:
    return raw
  if isinstance(current, (tuple, list)):
    value = ast.literal_eval(raw)
    return type(current)(value if isinstance(value, (tuple, list))
                         else (value,))
  return ast.literal_eval(raw)


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Sequence[tuple[str, str]]) -> None:
  """Sets dotted fields from strings, typed by the existing values."""
  for key, raw in overrides:
    parts = key.split(".")
    node = config
    for p in parts[:-1]:
      if p not in node:
        raise KeyError(f"--config.{key}: no field {p!r} (fields: "
                       f"{', '.join(sorted(node.keys()))})")
      node = node[p]
    leaf = parts[-1]
    if leaf not in node:
      raise KeyError(f"--config.{key}: no field {leaf!r} (fields: "
                     f"{', '.join(sorted(node.keys()))})")
    try:
      node[leaf] = _convert(raw, node[leaf])
    except (ValueError, SyntaxError, TypeError) as e:
      raise ValueError(f"--config.{key}={raw}: {e}") from None


def parse_override_args(args: Sequence[str]) -> list[tuple[str, str]]:
  """``['--config.a.b=1', '--config.c', '2']`` -> ``[('a.b', '1'), ('c', '2')]``."""
  out, i = [], 0
  while i < len(args):
    a = args[i]
    if not a.startswith("--config."):
      raise ValueError(f"unrecognised argument {a!r} (overrides look like "
                       "--config.field=value)")
    body = a[len("--config."):]
    if "=" in body:
      key, value = body.split("=", 1)
    else:
      if i + 1 >= len(args):
        raise ValueError(f"{a} needs a value")
      key, value = body, args[i + 1]
      i += 1
    out.append((key, value))
    i += 1
  return out


def config_to_json(config: ml_collections.ConfigDict) -> str:
  """The resolved config as indented JSON."""
  return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)
