"""Training checkpoints with orbax: save, keep K, resume, fail loudly.

The checkpoint of a training run is a file format like the others here:
we write it, and read our own and strangers' (``weights.load_workdir``).
A checkpoint ``WORKDIR/checkpoints/<step>/`` holds ``state`` (params,
optimiser state, step) and ``meta`` (JSON: step, seed, data position,
architecture). Orbax writes each one to a temporary folder and renames it
when complete, so a run killed at any point leaves only complete
checkpoints; ``restore_latest`` takes the newest of them. A checkpoint that
cannot be restored into the configured model is an error, never a silent
fresh start.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["CheckpointError", "make_manager", "save", "restore_latest"]


class CheckpointError(RuntimeError):
  """A checkpoint exists but cannot be used; the message says what to do."""


def make_manager(directory: str, *, keep: int,
                 async_save: bool = True) -> ocp.CheckpointManager:
  """A manager for ``directory`` keeping the newest ``keep`` checkpoints."""
  directory = os.path.abspath(directory)
  options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, enable_async_checkpointing=async_save, create=True)
  return ocp.CheckpointManager(directory, options=options)


def save(manager: ocp.CheckpointManager, step: int, state: dict[str, Any],
         meta: dict[str, Any]) -> None:
  """Starts saving (asynchronously); ``manager.wait_until_finished()`` ends it."""
  manager.save(step, args=ocp.args.Composite(
      state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
               force=True)


def _as_saved(state_dir: str) -> Any:
  """The saved arrays' shapes and dtypes, placed on this process's first
  device (a run written on 2 devices is read on 1, and the other way)."""
  md = ocp.StandardCheckpointer().metadata(state_dir)
  tree = getattr(md, "item_metadata", md)
  tree = getattr(tree, "tree", tree)
  one = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  return jax.tree_util.tree_map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=one), tree)


def restore_latest(manager: ocp.CheckpointManager,
                   target: dict[str, Any] | None
                   ) -> tuple[dict[str, Any], dict[str, Any]] | None:
  """Restores the newest complete checkpoint into ``target``'s structure.

  Args:
    manager: from ``make_manager``.
    target: a state pytree of the right structure (arrays or
      ``jax.ShapeDtypeStruct``; ``jax.eval_shape`` of the initialiser), or
      None to read the arrays as saved, onto this process's first device
      whatever devices wrote them (the caller checks them: a stranger's
      run folder, ``weights.load_workdir``).

  Returns:
    ``(state, meta)``, or None when there is no checkpoint.

  Raises:
    CheckpointError: the newest checkpoint cannot be read or does not fit
      ``target`` (another architecture or optimiser).
  """
  step = manager.latest_step()
  if step is None:
    return None
  path = os.path.join(str(manager.directory), str(step))
  try:
    abstract = (_as_saved(os.path.join(path, "state")) if target is None
                else jax.tree_util.tree_map(
                    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), target))
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract),
        meta=ocp.args.JsonRestore()))
  except Exception as e:  # noqa: BLE001 - orbax raises many kinds
    raise CheckpointError(
        f"cannot restore checkpoint {path}: {type(e).__name__}: "
        f"{str(e)[:500]}\nIt was written by another configuration or is "
        "damaged. Use the configuration it was trained with, or a new "
        "--workdir; delete that step's folder to fall back to an older "
        "checkpoint.") from None
  meta = restored["meta"]
  if not isinstance(meta, dict) or not isinstance(meta.get("step"), int):
    raise CheckpointError(
        f"cannot restore checkpoint {path}: its meta is not a training "
        "checkpoint's (no step). Delete that step's folder to fall back to "
        "an older checkpoint, or use a new --workdir.")
  return restored["state"], meta
