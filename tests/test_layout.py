"""The package's architecture, checked: layers import only downwards, no
import cycles, tooling stays out of the installed package, old module paths
point to the new ones, and the command line starts without JAX."""

import ast
import pathlib
import subprocess
import sys
import warnings

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "zerodce_jax"
# a module may import from its own layer and the layers before it
LAYERS = ["core", "formats", "training", "apps", "cli"]


def _module_name(path: pathlib.Path) -> str:
  rel = path.relative_to(ROOT).with_suffix("")
  parts = list(rel.parts)
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def _imports(path: pathlib.Path) -> set[str]:
  """Every ``zerodce_jax``/``benchmarks`` module a file imports, at any
  depth (lazy imports inside functions included)."""
  out = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      out |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      out.add(node.module)
      out |= {f"{node.module}.{a.name}" for a in node.names}
  return {m for m in out if m.split(".")[0] in ("zerodce_jax", "benchmarks")}


def _graph() -> dict[str, set[str]]:
  files = {_module_name(p): p for p in PKG.rglob("*.py")}
  return {name: {m for m in _imports(p) if m in files and m != name}
          for name, p in files.items()}


def _layer(module: str) -> int | None:
  parts = module.split(".")
  return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS \
      else None


def test_layers_import_only_downwards():
  bad = []
  for mod, deps in _graph().items():
    lm = _layer(mod)
    for d in deps:
      ld = _layer(d)
      if lm is not None and ld is not None and ld > lm:
        bad.append(f"{mod} -> {d}")
  assert not bad, bad


def test_library_never_imports_tooling():
  bad = [f"{_module_name(p)} -> {m}" for p in PKG.rglob("*.py")
         for m in _imports(p) if m.startswith("benchmarks")
         and p.name != "bench.py"]  # cli/bench.py: the thin entry point
  assert not bad, bad


def test_no_import_cycles():
  graph = _graph()
  # a package's __init__ re-exporting its modules is not a cycle with them
  graph = {m: {d for d in deps if not m.startswith(d + ".")}
           for m, deps in graph.items()}
  state: dict[str, int] = {}
  cycles = []

  def visit(m, path):
    state[m] = 1
    for d in graph.get(m, ()):
      if state.get(d) == 1:
        cycles.append(path[path.index(d):] + [d])
      elif d not in state:
        visit(d, path + [d])
    state[m] = 2

  for m in graph:
    if m not in state:
      visit(m, [m])
  assert not cycles, cycles


def test_tooling_is_not_installed():
  from setuptools import find_packages
  packages = find_packages(str(ROOT), include=["zerodce_jax*"])
  assert "zerodce_jax.core" in packages
  assert not [p for p in packages if "benchmarks" in p or "tests" in p]


def test_old_module_paths_point_to_the_new_ones():
  import zerodce_jax
  from zerodce_jax.core import curves
  with pytest.warns(DeprecationWarning, match="zerodce_jax.core.curves"):
    from zerodce_jax import curves as old  # noqa: PLC0415
  assert old is curves
  with pytest.warns(DeprecationWarning, match="apps.enhance_files"):
    import zerodce_jax.enhance_files as old_files  # noqa: F401, PLC0415
  from zerodce_jax.apps import enhance_files
  assert old_files.collect_jobs is enhance_files.collect_jobs
  with pytest.raises(ImportError, match="benchmarks.harness"):
    import zerodce_jax.bench  # noqa: F401, PLC0415
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # the new names warn about nothing
    assert callable(zerodce_jax.enhance) and zerodce_jax.Enhancer


def test_command_line_starts_without_jax():
  code = ("import sys; from zerodce_jax import cli; "
          "assert cli.main(['--version']) == 0; cli.build_parser(); "
          "assert 'jax' not in sys.modules, 'jax imported'")
  r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                     text=True, timeout=60, cwd=ROOT)
  assert r.returncode == 0, r.stderr
  assert r.stdout.startswith("zerodce-jax ")
