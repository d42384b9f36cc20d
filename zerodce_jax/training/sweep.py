"""Many models in one compiled program: what ``zerodce sweep`` runs.

A sweep is a list of variants of one config: the config's own list
(``config.sweep.variants``: ``dict(name=..., overrides={field: value})``),
times seeds (``--seeds`` or ``config.sweep.seeds``), times a cartesian grid
(``--grid field=v1,v2``). Variants that differ only in *traced* fields
(``TRACED_FIELDS``: the seed, the loss weights, the exposure level E, the
learning rate, the weight decay and the clip norm) train together as one
group: their train states are stacked along a leading variant axis ``K``
and one jitted step runs ``jax.vmap`` of ``step.train_step`` over them, the
per-variant hyperparameters passed as arrays (the optimiser's inside its
state, through ``optax.inject_hyperparams``). Variants that differ in
anything else (architecture, image size, batch, loss formulas, ...) form
separate groups, trained one after another; a shape-changing field
(``SHAPE_FIELDS``) may vary only through the config's variant list.

Array conventions: every leaf of a group's ``SweepState`` has the variant
axis first; a step takes ``[K, B, H, W, 3]`` float32 images in [0, 1] (host
pipeline) or ``[K, B]`` int32 indices into the resident uint8 training set
(device pipeline), each variant's batch drawn from its own seed exactly as
``zerodce train`` draws it, so variant ``k`` trains as ``loop.train`` of its
config would (to float32 rounding: vmapped convolutions are grouped ones).

On CPU devices the default strategy is ``"unroll"`` instead of vmap: one
copy of the step per variant in the same program (``sweep_train_step``).

Devices: the variant axis is split over a ``("variant", "batch")`` mesh of
all devices (``gcd(K, devices)`` variant shards, the rest of the devices
data-parallel within each variant, gradients averaged over ``"batch"``
only), under ``jax.shard_map``; one device runs a plain ``jax.jit``.

A non-finite loss or gradient stops its variant only: the step keeps that
variant's previous state (``alive`` turns false, ``failed_step`` records the
step) and the others go on. Outputs, per variant ``W/<name>/``: config.json,
metrics (jsonl, csv, TensorBoard), samples, weights.msgpack; per group one
orbax checkpoint of the stacked state in ``W/groups/<group>/checkpoints``;
``W/variants.json`` lists every variant, its overrides, status and weights.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import os
import sys
import time
from typing import Any, Callable, Iterator, Mapping, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

from zerodce_jax.core import losses
from zerodce_jax.formats import atomic, checkpoints, image_io, params_io
from zerodce_jax.training import config_utils, input_pipeline, metric_writers
from zerodce_jax.training.loop import load_training_images
from zerodce_jax.training.step import (TrainState, create_train_state,
                                       in_lockstep, model_from_config,
                                       train_step)

__all__ = ["SweepError", "Variant", "SweepState", "TRACED_FIELDS",
           "SHAPE_FIELDS", "parse_seeds", "parse_grid", "expand_variants",
           "group_variants", "official_chain", "make_sweep_optimizer",
           "make_sweep_loss_fn", "sweep_train_step", "SweepLayout",
           "STRATEGIES", "resolve_strategy", "make_sweep_step",
           "init_sweep_state", "group_hyperparams", "run_sweep"]

# Fields that may differ inside one group (passed to the step as arrays).
TRACED_FIELDS = ("seed", "loss.weights.*", "loss.exposure_level",
                 "optim.learning_rate", "optim.weight_decay",
                 "optim.clip_norm")
# Fields that change array shapes: variants only through the config's list.
SHAPE_FIELDS = ("model.arch", "data.image_size", "data.crop_size",
                "batch_size")
# Fields a resumed group may change (how long, how often it logs).
_SCHEDULE_FIELDS = ("num_steps", "num_epochs", "log_every",
                    "checkpoint_every", "keep_checkpoints", "sample_every",
                    "num_samples", "data.prefetch", "parallel")
FORMAT = "zerodce-jax-sweep"
STRATEGIES = ("auto", "vmap", "unroll")


class SweepError(ValueError):
  """A malformed sweep (one line saying which field or value)."""


@dataclasses.dataclass(frozen=True)
class Variant:
  """One model of a sweep.

  Attributes:
    name: its folder under the workdir.
    overrides: dotted field -> value, what distinguishes it from the base.
    config: the resolved train config (``zerodce train`` of it trains the
      same model alone).
  """
  name: str
  overrides: dict[str, Any]
  config: ml_collections.ConfigDict


@flax.struct.dataclass
class SweepState:
  """A group's stacked train states, every leaf ``[K, ...]``.

  Attributes:
    train: ``K`` train states stacked (params, optimiser state with the
      per-variant learning rate, weight decay and clip norm, step).
    alive: bool ``[K]``; false once a variant hit a non-finite loss or
      gradient (its state stops changing).
    failed_step: int32 ``[K]``, the step whose loss was non-finite (0 while
      alive).
  """
  train: TrainState
  alive: jax.Array
  failed_step: jax.Array


# --------------------------------------------------------------------------
# Variants: config list x seeds x grid.
# --------------------------------------------------------------------------
def parse_seeds(text: str) -> list[int]:
  """``"0,1,2"`` -> ``[0, 1, 2]``.

  Raises:
    SweepError: empty, not integers, or repeated.
  """
  parts = [p.strip() for p in text.split(",") if p.strip()]
  if not parts:
    raise SweepError(f"--seeds {text!r}: an empty list (give e.g. 0,1,2)")
  try:
    seeds = [int(p) for p in parts]
  except ValueError:
    raise SweepError(f"--seeds {text!r}: not a list of integers") from None
  if len(set(seeds)) != len(seeds):
    raise SweepError(f"--seeds {text!r}: a seed is repeated")
  return seeds


def parse_grid(specs: Sequence[str]) -> list[tuple[str, list[str]]]:
  """``["loss.weights.spa=0,1"]`` -> ``[("loss.weights.spa", ["0", "1"])]``.

  Raises:
    SweepError: no ``=``, an empty list of values, a repeated field or
      value.
  """
  out: list[tuple[str, list[str]]] = []
  for spec in specs:
    field, eq, values = spec.partition("=")
    field = field.strip()
    if not eq or not field:
      raise SweepError(f"--grid {spec!r}: expected FIELD=V1,V2,...")
    vals = [v.strip() for v in values.split(",") if v.strip()]
    if not vals:
      raise SweepError(f"--grid {spec!r}: an empty list of values")
    if len(set(vals)) != len(vals):
      raise SweepError(f"--grid {spec!r}: a value is repeated")
    if field in (f for f, _ in out):
      raise SweepError(f"--grid {field}: given twice")
    out.append((field, vals))
  return out


def _has_field(config: ml_collections.ConfigDict, key: str) -> bool:
  node = config
  for part in key.split("."):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      return False
    node = node[part]
  return True


def _get(config: ml_collections.ConfigDict, key: str) -> Any:
  node = config
  for part in key.split("."):
    node = node[part]
  return node


def _traced(key: str) -> bool:
  return key in TRACED_FIELDS or key.startswith("loss.weights.")


def _apply(config: ml_collections.ConfigDict, key: str, value: Any,
           where: str) -> None:
  """Sets ``key`` from a typed value or a string (typed by the field)."""
  if not _has_field(config, key) or key == "sweep" or key.startswith(
      "sweep."):
    raise SweepError(f"{where}: no config field {key!r}")
  raw = value if isinstance(value, str) else repr(value)
  try:
    config_utils.apply_overrides(config, [(key, raw)])
  except (KeyError, ValueError) as e:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    if msg.startswith("--config."):  # config_utils names the override
      msg = msg.split(": ", 1)[-1]
    raise SweepError(f"{where}: {msg}") from None


def _base(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config`` without its ``sweep`` section (a plain train config)."""
  c = copy.deepcopy(config)
  with c.unlocked():
    if "sweep" in c:
      del c["sweep"]
  c.lock()
  return c


def _label(value: str) -> str:
  return value.replace("/", "_").replace(" ", "")


def expand_variants(config: ml_collections.ConfigDict, *,
                    seeds: Sequence[int] | None = None,
                    grid: Sequence[tuple[str, Sequence[str]]] = ()
                    ) -> list[Variant]:
  """The variants a sweep config and its flags describe, in order.

  Args:
    config: a config; ``config.sweep.variants`` (optional) lists
      ``dict(name=..., overrides={dotted field: value})``, and
      ``config.sweep.seeds`` (optional) a default for ``seeds``.
    seeds: every variant once per seed (names get ``-seed<s>``).
    grid: ``(field, values)`` pairs from ``parse_grid``: the cartesian
      product of their values (strings typed by the field; names get
      ``-<field>=<value>``).

  Returns:
    One ``Variant`` per combination (config list x seeds x grid).

  Raises:
    SweepError: an unknown field, a shape-changing field in the grid, an
      empty list, a bad value or a repeated name.
  """
  sweep = config.get("sweep") if "sweep" in config else None
  listed = list(sweep.get("variants", ())) if sweep is not None else []
  if seeds is None and sweep is not None and sweep.get("seeds"):
    seeds = list(sweep.seeds)
  if seeds is not None and not len(seeds):
    raise SweepError("seeds: an empty list")
  base = _base(config)
  for field, values in grid:
    if not _has_field(base, field):
      raise SweepError(f"--grid {field}: no such config field")
    if field in SHAPE_FIELDS:
      raise SweepError(
          f"--grid {field}: a shape-changing field ({', '.join(SHAPE_FIELDS)})"
          " varies only through the config's sweep.variants list, where "
          "each shape trains as its own group")
    if not len(values):
      raise SweepError(f"--grid {field}: an empty list of values")
  leaves = [f.rsplit(".", 1)[-1] for f, _ in grid]
  labels = [leaf if leaves.count(leaf) == 1 else f
            for leaf, (f, _) in zip(leaves, grid)]
  entries = []
  for i, entry in enumerate(listed or [{"name": "", "overrides": {}}]):
    if not isinstance(entry, Mapping) or "name" not in entry:
      raise SweepError(f"sweep.variants[{i}]: expected dict(name=..., "
                       f"overrides={{...}}), got {entry!r}")
    overrides = dict(entry.get("overrides") or {})
    entries.append((str(entry["name"]), overrides))
  seed_list = list(seeds) if seeds is not None else [None]
  value_lists = [list(v) for _, v in grid]
  out: list[Variant] = []
  for (name, overrides), seed, combo in itertools.product(
      entries, seed_list, itertools.product(*value_lists)):
    c = copy.deepcopy(base)
    applied = {}
    where = f"sweep.variants {name!r}" if name else "sweep"
    for key, value in overrides.items():
      _apply(c, key, value, where)
      applied[key] = _get(c, key)
    parts = [name] if name else []
    if seed is not None:
      _apply(c, "seed", seed, "--seeds")
      applied["seed"] = int(seed)
      parts.append(f"seed{seed}")
    for (field, _), label, raw in zip(grid, labels, combo):
      _apply(c, field, raw, f"--grid {field}={raw}")
      applied[field] = _get(c, field)
      parts.append(f"{label}={_label(raw)}")
    out.append(Variant(name="-".join(parts) or "base", overrides=applied,
                       config=c))
  names = [v.name for v in out]
  dup = sorted({n for n in names if names.count(n) > 1})
  if dup:
    raise SweepError(f"variant names repeat: {', '.join(dup)}")
  bad = [n for n in names if n in (".", "..", "groups") or n.startswith(".")]
  if bad:
    raise SweepError(f"variant name {bad[0]!r} is reserved")
  return out


def _without(d: dict, dotted: Sequence[str]) -> dict:
  d = copy.deepcopy(d)
  for key in dotted:
    *path, leaf = key.split(".")
    node = d
    for p in path:
      node = node.get(p, {})
    if leaf == "*":
      node.clear()
    else:
      node.pop(leaf, None)
  return d


def _group_key(config: ml_collections.ConfigDict) -> str:
  return json.dumps(_without(config.to_dict(), TRACED_FIELDS),
                    sort_keys=True, default=str)


def group_variants(variants: Sequence[Variant]) -> list[list[Variant]]:
  """Variants that may share one compiled step (all fields but the traced
  ones equal), in order of first appearance."""
  groups: dict[str, list[Variant]] = {}
  for v in variants:
    groups.setdefault(_group_key(v.config), []).append(v)
  return list(groups.values())


# --------------------------------------------------------------------------
# The optimiser and the loss with per-variant (traced) hyperparameters.
# --------------------------------------------------------------------------
def _clip_by_global_norm_unless_off(max_norm: jax.Array
                                    ) -> optax.GradientTransformation:
  """``optax.clip_by_global_norm`` (the same arithmetic), a no-op where
  ``max_norm <= 0`` (the configs' "no clipping"), for a traced norm."""

  def update_fn(updates, state, params=None):
    del params
    g_norm = optax.tree.norm(updates)
    keep = jnp.squeeze((g_norm < max_norm) | (max_norm <= 0))

    def clip(t):
      return jax.lax.select(keep, t, (t / g_norm.astype(t.dtype)) * max_norm)

    return jax.tree_util.tree_map(clip, updates), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


def official_chain(learning_rate: Any, weight_decay: Any, clip_norm: Any,
                   decoupled_weight_decay: bool = False
                   ) -> optax.GradientTransformation:
  """``step.make_optimizer`` with array-valued hyperparameters.

  The same transforms in the same order (clip, coupled L2, Adam, learning
  rate; or AdamW), with the clip a no-op for ``clip_norm <= 0`` and the
  decay adding ``0 * param`` for ``weight_decay == 0``, so one structure
  serves every variant and the values can be traced.
  """
  parts = [_clip_by_global_norm_unless_off(clip_norm)]
  if decoupled_weight_decay:
    parts += [optax.scale_by_adam(), optax.add_decayed_weights(weight_decay)]
  else:
    parts += [optax.add_decayed_weights(weight_decay), optax.scale_by_adam()]
  parts.append(optax.scale_by_learning_rate(learning_rate))
  return optax.chain(*parts)


def make_sweep_optimizer(*, learning_rate: float, weight_decay: float,
                         clip_norm: float,
                         decoupled_weight_decay: bool = False
                         ) -> optax.GradientTransformation:
  """``official_chain`` under ``optax.inject_hyperparams``: the learning
  rate, weight decay and clip norm live in the optimiser state
  (``opt_state.hyperparams``), so stacked states carry one of each per
  variant (``init_sweep_state`` sets them)."""
  return optax.inject_hyperparams(
      official_chain, static_args=("decoupled_weight_decay",))(
          learning_rate=learning_rate, weight_decay=weight_decay,
          clip_norm=clip_norm, decoupled_weight_decay=decoupled_weight_decay)


def make_sweep_loss_fn(model, *, terms: Sequence[str],
                       variant: Mapping[str, str] | str = "official",
                       exposure_patch: int = 16, spatial_region: int = 4,
                       color_eps: float = 0.0) -> Callable:
  """``loss_fn(params, batch, *, hp) -> (loss, values)`` with traced weights.

  Args:
    model: the group's ``DCENet``.
    terms: the terms any variant of the group weights (in the config's
      order); a variant whose weight is 0 adds ``0 * term``.
    variant, exposure_patch, spatial_region, color_eps: as
      ``losses.total_loss``.

  ``hp`` holds one variant's ``weights`` (term -> scalar) and
  ``exposure_level``; ``values`` each term's unweighted batch mean.
  """
  terms = list(terms)

  def loss_fn(params, batch, *, hp):
    enhanced, maps = model.apply({"params": params}, batch)[:2]
    _, values = losses.total_loss(
        enhanced=enhanced.astype(jnp.float32), original=batch,
        maps=maps.astype(jnp.float32), weights={t: 1.0 for t in terms},
        variant=variant, exposure_level=hp["exposure_level"],
        exposure_patch=exposure_patch, spatial_region=spatial_region,
        color_eps=color_eps)
    loss = jnp.zeros((), jnp.float32)
    for t in terms:  # total_loss's sum, in its order
      loss = loss + hp["weights"][t] * values[t]
    return loss, values

  return loss_fn


# --------------------------------------------------------------------------
# The step: vmap of train_step, masked, over a (variant, batch) mesh.
# --------------------------------------------------------------------------
def sweep_train_step(sw: SweepState, data: jax.Array, images: Any,
                     hp: Mapping[str, Any], *, loss_fn: Callable,
                     make_batch: Callable | None = None,
                     axis_name: str | None = None,
                     images_per_variant: bool = False,
                     strategy: str = "vmap"
                     ) -> tuple[SweepState, dict[str, jax.Array]]:
  """One step of every variant of a group (pure; vmap of ``train_step``).

  Args:
    sw: the stacked state, leaves ``[K, ...]``.
    data: ``[K, b, H, W, 3]`` images, or with ``make_batch`` ``[K, b]``
      indices into ``images``.
    images: the resident uint8 set ``[N, H, W, 3]`` (``[K, N, H, W, 3]``
      with ``images_per_variant``), or None.
    hp: ``seed`` int ``[K]``, ``exposure_level`` ``[K]``, ``weights``
      (term -> ``[K]``).
    loss_fn: from ``make_sweep_loss_fn``.
    make_batch: ``input_pipeline.device_batch`` with the augmentation
      options bound (the seed comes from ``hp``).
    axis_name: the data-parallel axis inside each variant, or None.
    images_per_variant: ``images`` has a variant axis.
    strategy: ``"vmap"``: ``jax.vmap`` of ``train_step`` over the variant
      axis (per-variant kernels become grouped convolutions: one wide
      program, meant for GPU/TPU); ``"unroll"``: one copy of ``train_step``
      per variant in the same program (on XLA:CPU as fast as separate
      steps, where ``vmap`` is about half as fast,
      ``benchmarks/results/sweep.json``; compile time grows with ``K``).
      The same values to float32 rounding.

  Returns:
    ``(sw, metrics)``; metrics ``[K]`` each (``loss``, the terms,
    ``grad_norm``). A variant with a non-finite loss or gradient norm keeps
    its previous state and is marked dead.
  """

  def one(state, d, imgs, h):
    if make_batch is None:
      batch = d
    else:
      first = (0 if axis_name is None
               else jax.lax.axis_index(axis_name) * d.shape[0])
      batch = make_batch(imgs, d, seed=h["seed"], step=state.step,
                         first_position=first)
    return train_step(state, batch,
                      loss_fn=functools.partial(loss_fn, hp=h),
                      axis_name=axis_name)

  if strategy == "vmap":
    new, metrics = jax.vmap(one, in_axes=(0, 0, 0 if images_per_variant
                                          else None, 0))(sw.train, data,
                                                         images, hp)
  elif strategy == "unroll":
    def row(tree, i):
      return jax.tree_util.tree_map(lambda x: x[i], tree)

    outs = [one(row(sw.train, i), data[i],
                images[i] if images_per_variant else images, row(hp, i))
            for i in range(data.shape[0])]
    new, metrics = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)
  else:
    raise ValueError(f"strategy must be one of {STRATEGIES}, got "
                     f"{strategy!r}")
  ok = (sw.alive & jnp.isfinite(metrics["loss"])
        & jnp.isfinite(metrics["grad_norm"]))

  def keep(n, o):
    return jnp.where(ok.reshape(ok.shape + (1,) * (n.ndim - 1)), n, o)

  train = jax.tree_util.tree_map(keep, new, sw.train)
  failed = jnp.where(sw.alive & ~ok, sw.train.step + 1, sw.failed_step)
  return SweepState(train=train, alive=ok,
                    failed_step=failed.astype(jnp.int32)), metrics


class SweepLayout:
  """Where a group's arrays live: one device, or a ``("variant", "batch")``
  mesh over every process's devices (``gcd(K, devices)`` variant shards;
  each variant data-parallel over the remaining factor).

  Args:
    devices: this process's devices (every process the same number).
    num_variants: ``K``.
    batch_size: each variant's batch.

  Raises:
    ValueError: the batch does not split over the data-parallel factor.
  """

  def __init__(self, devices: Sequence[Any], *, num_variants: int,
               batch_size: int):
    devices = list(devices)
    self.num_variants = num_variants
    if len(devices) == 1 and jax.process_count() == 1:
      self.mesh, self.device = None, devices[0]
      self.variant_shards = self.batch_shards = 1
      return
    from jax.sharding import Mesh  # noqa: PLC0415
    if jax.process_count() > 1:
      by_proc: dict[int, list] = {}
      for d in jax.devices():
        by_proc.setdefault(d.process_index, []).append(d)
      devices = [d for p in sorted(by_proc) for d in by_proc[p][:len(devices)]]
    n = len(devices)
    self.variant_shards = math.gcd(num_variants, n)
    self.batch_shards = n // self.variant_shards
    if batch_size % self.batch_shards:
      raise ValueError(
          f"{num_variants} variant(s) on {n} devices: each variant's batch "
          f"{batch_size} must split over {self.batch_shards} devices (use a "
          "number of variants or devices that divide each other)")
    self.mesh = Mesh(np.array(devices).reshape(self.variant_shards,
                                               self.batch_shards),
                     ("variant", "batch"))
    self.device = None

  def sharding(self, *axes: str | None):
    from jax.sharding import NamedSharding, PartitionSpec as P  # noqa: PLC0415
    return NamedSharding(self.mesh, P(*axes))

  def put(self, tree: Any, *axes: str | None) -> Any:
    """Host arrays (global values, the same on every process) as arrays
    laid out as ``PartitionSpec(*axes)`` (``("variant",)`` by default)."""
    if self.mesh is None:
      return jax.device_put(tree, self.device)
    sharding = self.sharding(*(axes or ("variant",)))

    def one(x):
      x = np.asarray(x)
      return jax.make_array_from_callback(x.shape, sharding,
                                          lambda idx: x[idx])

    return jax.tree_util.tree_map(one, tree)

  def put_data(self, data: np.ndarray) -> jax.Array:
    return self.put(data, "variant", "batch")

  def local_variants(self, shape: Sequence[int]) -> list[int]:
    """The variants whose batches this process's devices hold."""
    if self.mesh is None:
      return list(range(self.num_variants))
    rows = set()
    where = self.sharding("variant", "batch")
    for idx in where.addressable_devices_indices_map(tuple(shape)).values():
      rows.update(range(*idx[0].indices(self.num_variants)))
    return sorted(rows)


def resolve_strategy(strategy: str, devices: Sequence[Any]) -> str:
  """``"auto"``: ``"unroll"`` on CPU devices, ``"vmap"`` elsewhere (see
  ``sweep_train_step``); other choices unchanged."""
  if strategy not in STRATEGIES:
    raise ValueError(f"strategy must be one of {STRATEGIES}, got "
                     f"{strategy!r}")
  if strategy == "auto":
    return "unroll" if list(devices)[0].platform == "cpu" else "vmap"
  return strategy


def make_sweep_step(loss_fn: Callable, layout: SweepLayout, *,
                    make_batch: Callable | None = None,
                    images_per_variant: bool = False,
                    strategy: str = "vmap") -> Callable:
  """``step(sw, data, images, hp) -> (sw, metrics)``, jitted, state donated.

  One device: ``jax.jit`` of ``sweep_train_step``. A mesh: ``jax.jit`` of
  ``jax.shard_map`` over it (state, data and hyperparameters split on
  ``"variant"``, data also on ``"batch"``; ``check_vma=False`` for
  ``train_step``'s pmean semantics, see ``step``), with no traffic between
  variant shards.
  """
  body = functools.partial(sweep_train_step, loss_fn=loss_fn,
                           make_batch=make_batch,
                           images_per_variant=images_per_variant,
                           strategy=strategy)
  if layout.mesh is None:
    return jax.jit(functools.partial(body, axis_name=None),
                   donate_argnums=(0,))
  from jax.sharding import PartitionSpec as P  # noqa: PLC0415
  axis = "batch" if layout.batch_shards > 1 else None
  return in_lockstep(jax.jit(jax.shard_map(
      functools.partial(body, axis_name=axis), mesh=layout.mesh,
      in_specs=(P("variant"), P("variant", "batch"),
                P("variant") if images_per_variant else P(), P("variant")),
      out_specs=(P("variant"), P("variant")), check_vma=False),
                 donate_argnums=(0,)), layout.mesh.devices.flat)


# --------------------------------------------------------------------------
# A group's state, hyperparameters and data.
# --------------------------------------------------------------------------
def _group_terms(group: Sequence[Variant]) -> list[str]:
  order = list(dict(group[0].config.loss.weights))
  return [t for t in order
          if any(v.config.loss.weights[t] != 0 for v in group)]


def init_sweep_state(group: Sequence[Variant], model, tx
                     ) -> SweepState:
  """Host arrays: each variant initialised as ``loop.train`` initialises
  it (key from its seed), its optimiser hyperparameters set, stacked."""
  cfg = group[0].config
  size = cfg.data.crop_size or cfg.data.image_size
  states = []
  for v in group:
    s = create_train_state(model, tx, key=jax.random.key(v.config.seed),
                           image_size=size)
    o = v.config.optim
    hyper = {"learning_rate": o.learning_rate,
             "weight_decay": o.weight_decay, "clip_norm": o.clip_norm}
    s = s.replace(opt_state=s.opt_state._replace(hyperparams={
        k: np.float32(hyper[k]) for k in s.opt_state.hyperparams}))
    states.append(jax.device_get(s))
  stacked = jax.tree_util.tree_map(lambda *xs: np.stack(xs), *states)
  k = len(group)
  return SweepState(train=stacked, alive=np.ones(k, bool),
                    failed_step=np.zeros(k, np.int32))


def group_hyperparams(group: Sequence[Variant], terms: Sequence[str]
                      ) -> dict[str, Any]:
  """The step's per-variant ``hp``: ``seed`` int32 ``[K]``,
  ``exposure_level`` ``[K]``, ``weights`` term -> ``[K]`` (host arrays)."""
  return {"seed": np.array([v.config.seed for v in group], np.int32),
          "exposure_level": np.array([v.config.loss.exposure_level
                                      for v in group], np.float32),
          "weights": {t: np.array([v.config.loss.weights[t] for v in group],
                                  np.float32) for t in terms}}


def _state_dict(sw: SweepState) -> dict[str, Any]:
  return {"step": sw.train.step, "params": sw.train.params,
          "opt_state": sw.train.opt_state, "alive": sw.alive,
          "failed_step": sw.failed_step}


def _from_state_dict(sw: SweepState, sd: Mapping[str, Any]) -> SweepState:
  host = jax.tree_util.tree_map(np.asarray, dict(sd))
  return SweepState(
      train=sw.train.replace(step=host["step"], params=host["params"],
                             opt_state=host["opt_state"]),
      alive=host["alive"].astype(bool),
      failed_step=host["failed_step"].astype(np.int32))


def _gather(tree: Any) -> Any:
  """Host NumPy values of (possibly process-spanning) arrays; with several
  processes every process takes part."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  from jax.experimental import multihost_utils  # noqa: PLC0415
  return multihost_utils.process_allgather(tree, tiled=True)


def _data_key(config) -> str:
  d = config.data
  seed = config.seed if d.source == "synthetic" else None
  return json.dumps([d.source, d.path, d.split, d.image_size,
                     d.num_synthetic, seed])


def _batches(group, images_list, rows, *, start: int, on_device: bool
             ) -> Iterator[np.ndarray]:
  """``[K, B, ...]`` per step: each variant's batch as ``zerodce train``
  (one process) draws it from its seed; rows not in ``rows`` are zeros
  (another process makes them)."""
  cfg = group[0].config
  k, b = len(group), cfg.batch_size
  last = _last_batch(cfg)
  kw = {} if last == "drop" else {"last_batch": last}
  its = {}
  for r in rows:
    c = group[r].config
    if on_device:
      its[r] = input_pipeline.index_batches(
          len(images_list[r]), batch_size=b, seed=c.seed, start_step=start,
          **kw)
    else:
      its[r] = input_pipeline.batches(
          images_list[r], batch_size=b, seed=c.seed, start_step=start,
          random_flip=c.data.random_flip, crop_size=c.data.crop_size,
          exposure_mixing=c.data.exposure_mixing, **kw)
  while True:
    got = {r: next(it)[0] for r, it in its.items()}
    if len(got) == k:
      yield np.stack([got[r] for r in range(k)])
      continue
    first = next(iter(got.values()))
    out = np.zeros((k,) + first.shape, first.dtype)
    for r, x in got.items():
      out[r] = x
    yield out


def _fingerprint(group: Sequence[Variant]) -> str:
  docs = [_without(v.config.to_dict(), _SCHEDULE_FIELDS + ("data.path",))
          for v in group]
  text = json.dumps(docs, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def _prune_metrics(folder: str, after: int) -> None:
  """Drops rows logged after step ``after`` (a run killed after logging
  them resumes from an earlier checkpoint and logs them again)."""
  path = os.path.join(folder, "metrics.jsonl")
  if os.path.exists(path):
    with open(path) as f:
      keep = [line for line in f
              if line.strip() and json.loads(line)["step"] <= after]
    atomic.write_bytes(path, "".join(keep).encode())
  path = os.path.join(folder, "metrics.csv")
  if os.path.exists(path):
    with open(path) as f:
      lines = f.read().splitlines(keepends=True)
    keep = [ln for ln in lines[1:]
            if ln.strip() and int(ln.split(",", 1)[0]) <= after]
    if keep:
      atomic.write_bytes(path, "".join(lines[:1] + keep).encode())
    else:  # MetricWriter writes the header into a new file only
      os.remove(path)


def _sample_grid(apply, params, images: np.ndarray) -> np.ndarray:
  x = jnp.asarray(images.astype(np.float32) / 255.0)
  y = np.asarray(apply(params, x), np.float32)
  return np.concatenate([image_io.side_by_side(a, c) for a, c in
                         zip(np.asarray(x), y)], axis=0)


def _last_batch(config) -> str:
  # as loop.train reads it: a config without the field drops the remainder
  return config.data.get("last_batch", "drop")


def _total_steps(config, n: int) -> int:
  """The run's length as ``loop.train`` counts it."""
  if config.num_steps > 0:
    return config.num_steps
  last_batch = _last_batch(config)
  per_epoch = (n // config.batch_size if last_batch == "drop" else
               input_pipeline.steps_per_epoch(
                   n, batch_size=config.batch_size, last_batch=last_batch))
  return config.num_epochs * per_epoch


# --------------------------------------------------------------------------
# The sweep.
# --------------------------------------------------------------------------
def _write_doc(workdir: str, doc: dict) -> None:
  atomic.write_bytes(os.path.join(workdir, "variants.json"),
                     (json.dumps(doc, indent=2, default=str) + "\n").encode())


def _jsonable(v: Any) -> Any:
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)
  if isinstance(v, tuple):
    return list(v)
  return v


def run_sweep(config: ml_collections.ConfigDict, workdir: str, *,
              seeds: Sequence[int] | None = None,
              grid: Sequence[tuple[str, Sequence[str]]] = (),
              devices: Sequence[Any] | None = None, strategy: str = "auto",
              progress: bool = True, stop_after: int | None = None,
              warn: Callable[[str], None] | None = None
              ) -> tuple[dict[str, Any], dict[str, Any]]:
  """Trains every variant of a sweep, group by group, resuming from
  ``workdir``.

  Args:
    config: a config (``configs/sweep_*.py``, or any train config with
      ``seeds``/``grid``).
    workdir: the sweep's folder.
    seeds, grid: see ``expand_variants``.
    devices: this process's devices (default all local ones).
    strategy: how a group's variants share the step: ``"vmap"``,
      ``"unroll"`` or ``"auto"`` (see ``resolve_strategy``).
    progress: show a progress bar per group.
    stop_after: stop (after checkpointing) the first unfinished group once
      this step is reached, as an interruption would; for tests.
    warn: where messages about diverged variants go (default stderr).

  Returns:
    ``(doc, params)``: the content of ``variants.json`` and each variant's
    final params (host arrays; a diverged variant's as of the step before
    it diverged).

  Raises:
    SweepError: a malformed sweep.
    checkpoints.CheckpointError: a group's checkpoint belongs to another
      sweep or cannot be restored.
  """
  variants = expand_variants(config, seeds=seeds, grid=grid)
  groups = group_variants(variants)
  warn = warn or (lambda m: print(m, file=sys.stderr, flush=True))
  say = (lambda m: tqdm.write(m)) if progress else print
  devices = list(devices or jax.local_devices())
  strategy = resolve_strategy(strategy, devices)
  lead = jax.process_index() == 0
  os.makedirs(workdir, exist_ok=True)
  doc = {"format": FORMAT, "version": 1, "groups": [], "variants": []}
  for gi, group in enumerate(groups):
    cfg = group[0].config
    doc["groups"].append({
        "id": f"g{gi}", "variants": [v.name for v in group],
        "arch": cfg.model.arch, "image_size": cfg.data.image_size,
        "crop_size": cfg.data.crop_size, "batch_size": cfg.batch_size,
        "checkpoints": f"groups/g{gi}/checkpoints"})
    for v in group:
      doc["variants"].append({
          "name": v.name, "group": f"g{gi}",
          "overrides": {k: _jsonable(x) for k, x in v.overrides.items()},
          "seed": v.config.seed, "arch": v.config.model.arch,
          "status": "pending", "weights": None, "diverged_at_step": None})
  if lead:
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config_utils.config_to_json(config))
    for v in variants:
      os.makedirs(os.path.join(workdir, v.name), exist_ok=True)
      with open(os.path.join(workdir, v.name, "config.json"), "w") as f:
        f.write(config_utils.config_to_json(v.config))
    _write_doc(workdir, doc)
  say(f"sweep of {len(variants)} variant(s) in {len(groups)} group(s) on "
      f"{jax.process_count()} process(es) x {len(devices)} "
      f"{devices[0].platform} device(s), {strategy}")
  params_out: dict[str, Any] = {}
  for gi, group in enumerate(groups):
    finished = _train_group(gi, group, workdir, doc, params_out,
                            devices=devices, strategy=strategy,
                            progress=progress,
                            stop_after=stop_after, say=say, warn=warn,
                            lead=lead)
    if not finished:
      break
  return doc, params_out


def _train_group(gi, group, workdir, doc, params_out, *, devices, strategy,
                 progress, stop_after, say, warn, lead) -> bool:
  """Trains one group; True when it ran to its end."""
  cfg = group[0].config
  names = [v.name for v in group]
  k = len(group)
  entries = {e["name"]: e for e in doc["variants"]}
  if cfg.data.pipeline not in ("host", "device"):
    raise ValueError(f"data.pipeline must be 'host' or 'device', got "
                     f"{cfg.data.pipeline!r}")
  on_device = cfg.data.pipeline == "device"

  keys = [_data_key(v.config) for v in group]
  loaded: dict[str, np.ndarray] = {}
  for v, key in zip(group, keys):
    if key not in loaded:
      loaded[key] = load_training_images(v.config, report=say)
  images_list = [loaded[key] for key in keys]
  per_variant = len(loaded) > 1
  n = len(images_list[0])
  total = _total_steps(cfg, n)

  model = model_from_config(cfg)
  terms = _group_terms(group)
  loss_fn = make_sweep_loss_fn(model, terms=terms, variant=cfg.loss.variant,
                               exposure_patch=cfg.loss.exposure_patch,
                               spatial_region=cfg.loss.spatial_region,
                               color_eps=cfg.loss.color_eps)
  o = cfg.optim
  tx = make_sweep_optimizer(learning_rate=o.learning_rate,
                            weight_decay=o.weight_decay,
                            clip_norm=o.clip_norm,
                            decoupled_weight_decay=o.decoupled_weight_decay)
  sw = init_sweep_state(group, model, tx)
  hp = group_hyperparams(group, terms)

  gdir = os.path.join(workdir, "groups", f"g{gi}")
  manager = checkpoints.make_manager(os.path.join(gdir, "checkpoints"),
                                     keep=cfg.keep_checkpoints)
  fingerprint = _fingerprint(group)
  start = 0
  try:
    restored = checkpoints.restore_latest(manager, _state_dict(sw))
  except checkpoints.CheckpointError:
    manager.close()
    raise
  if restored is not None:
    sd, meta = restored
    if meta.get("variants") != names or meta.get("fingerprint") != fingerprint:
      manager.close()
      raise checkpoints.CheckpointError(
          f"{gdir}/checkpoints: written by another sweep (variants "
          f"{meta.get('variants')}); resuming would not reproduce it. Use "
          "the same config and flags, or a new --workdir.")
    sw = _from_state_dict(sw, sd)
    start = int(meta["step"])
    say(f"group g{gi}: resumed from {gdir}/checkpoints/{start}")

  layout = SweepLayout(devices, num_variants=k, batch_size=cfg.batch_size)
  rest = n % cfg.batch_size
  if _last_batch(cfg) == "keep" and rest % layout.batch_shards:
    raise ValueError(
        f"{n} images at batch {cfg.batch_size} leave a last batch of "
        f"{rest}, which does not split over {layout.batch_shards} devices; "
        "use data.last_batch='drop' or other device/variant counts")
  make_batch = None
  if on_device:
    make_batch = functools.partial(
        input_pipeline.device_batch, crop_size=cfg.data.crop_size,
        random_flip=cfg.data.random_flip,
        exposure_mixing=cfg.data.exposure_mixing)
  step_fn = make_sweep_step(loss_fn, layout, make_batch=make_batch,
                            images_per_variant=per_variant and on_device,
                            strategy=strategy)
  resident = None
  if on_device:
    resident = (layout.put(np.stack(images_list)) if per_variant
                else layout.put(images_list[0], None))
  data_shape = (k, cfg.batch_size)
  rows = layout.local_variants(data_shape)
  data = _batches(group, images_list, rows, start=start,
                  on_device=on_device)
  if not on_device:
    data = input_pipeline.prefetch(data, depth=cfg.data.prefetch)
  state = layout.put(sw)
  hp_dev = layout.put(hp)

  writers = {}
  if lead:
    for name in names:
      _prune_metrics(os.path.join(workdir, name), start)
      writers[name] = metric_writers.MetricWriter(
          os.path.join(workdir, name))
  apply = jax.jit(lambda p, x: model.apply({"params": p}, x)[0])
  weights_of = [{t: v.config.loss.weights[t] for t in terms} for v in group]
  meta_base = {"variants": names, "fingerprint": fingerprint,
               "seeds": [v.config.seed for v in group],
               "arch": cfg.model.arch, "images": n,
               "batch_size": cfg.batch_size,
               "last_batch": _last_batch(cfg), "strategy": strategy}

  def mark(host_alive, host_failed):
    changed = False
    for i, name in enumerate(names):
      e = entries[name]
      if not host_alive[i] and e["status"] != "diverged":
        e["status"], e["diverged_at_step"] = "diverged", int(host_failed[i])
        e["weights"] = None
        warn(f"zerodce sweep: variant {name} diverged (non-finite loss or "
             f"gradient) at step {int(host_failed[i])}; its params stay at "
             f"step {int(host_failed[i]) - 1}, the other variants go on")
        changed = True
    return changed

  def checkpoint(step, host):
    checkpoints.save(manager, step, _state_dict(host),
                     {**meta_base, "step": step, "data_position": step})

  host_alive = np.asarray(sw.alive)
  if lead and mark(host_alive, np.asarray(sw.failed_step)):
    _write_doc(workdir, doc)
  for name in names:
    if entries[name]["status"] == "pending":
      entries[name]["status"] = "running"
  if lead:
    _write_doc(workdir, doc)

  bar = tqdm(total=total, initial=start, unit="step", disable=not progress,
             dynamic_ncols=True, desc=f"g{gi} ({k} variant(s))")
  step, t0, seen = start, time.time(), 0
  stopped = False
  try:
    while step < total and host_alive.any():
      batch = next(data)
      state, metrics = step_fn(state, layout.put_data(batch), resident,
                               hp_dev)
      step += 1
      seen += batch.shape[1]
      bar.update(1)
      stop = stop_after is not None and step >= stop_after
      at_ckpt = step % cfg.checkpoint_every == 0 or step == total or stop
      if step % cfg.log_every == 0 or at_ckpt:
        m, host_alive, host_failed = _gather(
            (metrics, state.alive, state.failed_step))
        rate = seen / (time.time() - t0)
        if lead:
          for i, name in enumerate(names):
            if host_alive[i]:
              row = {"loss": float(m["loss"][i])}
              row.update({t: float(m[t][i]) for t in terms
                          if weights_of[i][t] != 0})
              row["grad_norm"] = float(m["grad_norm"][i])
              row["images_per_s"] = rate
              writers[name].write(step, row)
          if mark(host_alive, host_failed):
            _write_doc(workdir, doc)
        live = [float(m["loss"][i]) for i in range(k) if host_alive[i]]
        bar.set_postfix(alive=f"{len(live)}/{k}",
                        loss=f"{min(live):.4f}" if live else "-",
                        img_s=f"{rate * k:.1f}")
        if at_ckpt or not host_alive.any():
          checkpoint(step, _gather(state))
      if cfg.sample_every and step % cfg.sample_every == 0 and (
          cfg.num_samples):
        params = _gather(state.train.params)
        if lead:
          for i, name in enumerate(names):
            if not host_alive[i]:
              continue
            folder = os.path.join(workdir, name, "samples")
            os.makedirs(folder, exist_ok=True)
            image_io.write_image(
                os.path.join(folder, f"step_{step:07d}.png"),
                _sample_grid(apply, jax.tree_util.tree_map(
                    lambda x, i=i: x[i], params),
                    images_list[i][:cfg.num_samples]),
                image_io.ImageInfo(bit_depth=8, gray=False, alpha=None,
                                   format="png"))
      if stop:
        stopped = step < total
        break
  finally:
    data.close()  # ends the prefetch thread
    bar.close()
    manager.wait_until_finished()
    manager.close()
    for w in writers.values():
      w.close()

  group_doc = next(g for g in doc["groups"] if g["id"] == f"g{gi}")
  group_doc["wall_s"] = round(time.time() - t0, 1)  # this run's share
  final = _gather(state)
  host_alive = np.asarray(final.alive)
  for i, name in enumerate(names):
    params_out[name] = jax.tree_util.tree_map(lambda x, i=i: x[i],
                                              final.train.params)
  if lead:
    mark(host_alive, np.asarray(final.failed_step))
  if stopped:
    for name in names:
      if entries[name]["status"] == "running":
        entries[name]["status"] = "stopped"
    if lead:
      _write_doc(workdir, doc)
    return False
  for i, name in enumerate(names):
    e = entries[name]
    if host_alive[i]:
      e["status"], e["steps"] = "done", step
      e["weights"] = f"{name}/weights.msgpack"
      if lead:
        params_io.save_params(
            os.path.join(workdir, e["weights"]), params_out[name],
            arch=params_io.arch_of(model),
            source=f"zerodce-jax sweep {os.path.abspath(workdir)}, variant "
            f"{name}, config {cfg.model.arch}/{cfg.loss.variant}, step "
            f"{step}")
  if lead:
    _write_doc(workdir, doc)
  return True
