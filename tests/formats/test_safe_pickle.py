"""The code-free pickle machine: plain data round-trips at every protocol,
everything that could run code is refused, and the package never unpickles
with anything else."""

import ast
import collections
import pathlib
import pickle

import pytest
from _support import optional

from zerodce_jax.formats import safe_pickle

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_plain_data_round_trips_at_every_protocol():
  hypothesis = optional("hypothesis", extra="test")
  st = hypothesis.strategies
  def data(with_bytes):
    scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
               | st.floats(allow_nan=False) | st.text(max_size=20))
    if with_bytes:  # protocols 0-2 pickle bytes through a global: refused
      scalars |= st.binary(max_size=20)
    return st.recursive(scalars, lambda kids: (
        st.lists(kids, max_size=4) | st.tuples(kids, kids)
        | st.dictionaries(st.text(max_size=5) | st.integers(), kids,
                          max_size=4)), max_leaves=20)

  cases = st.integers(0, 5).flatmap(
      lambda p: st.tuples(st.just(p), data(p >= 3)))

  @hypothesis.settings(max_examples=300, deadline=None, database=None,
                       derandomize=True)
  @hypothesis.given(cases)
  def check(case):
    protocol, obj = case
    raw = pickle.dumps(obj, protocol=protocol)
    got, end = safe_pickle.loads(raw)
    assert got == obj and end == len(raw)
    assert type(got) is type(obj)

  check()


def test_shared_references_stay_shared():
  inner = [1, 2]
  got, _ = safe_pickle.loads(pickle.dumps({"a": inner, "b": inner},
                                          protocol=2))
  assert got["a"] is got["b"]


def test_globals_only_from_the_allow_list():
  raw = pickle.dumps(collections.OrderedDict(a=1), protocol=2)
  with pytest.raises(safe_pickle.ForbiddenError,
                     match="collections.OrderedDict in the header"):
    safe_pickle.loads(raw, where=" in the header")
  calls = []
  allowed = {("collections", "OrderedDict"): safe_pickle.Allowed(
      "OrderedDict", lambda *a: calls.append(a) or {})}
  got, _ = safe_pickle.loads(raw, allowed=allowed)
  assert got == {"a": 1} and calls == [()]
  # a non-callable allowed value cannot be called
  with pytest.raises(safe_pickle.ForbiddenError, match="refusing to call"):
    safe_pickle.loads(raw, allowed={("collections", "OrderedDict"): 42})


@pytest.mark.parametrize("raw,match", [
    (b"\x80\x02\x82\x01.", "extension"),                   # EXT1
    (b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00]\x81.", "construct"),
    (b"\x80\x02K\x01\x8f.", "unsupported"),                # EMPTY_SET
    (b"\x80\x06N.", "protocol 6"),
    (b"\x80\x02K\x01Q.", "persistent"),                    # BINPERSID
    (b"\x80\x02]K\x01b.", "state of a list"),              # BUILD on a list
    (b"\x80\x02K\x01K\x02.", "2 objects left"),
    (b"\x80\x02h\x05.", "memo entry 5"),
    (b"\x80\x02K\x01K\x02a.", "APPEND to a int"),
    (b"\x80\x02\x8b\xff\xff\x00\x00" + b"\x01" * 10 + b".", "-byte integer"),
    (b"\x80\x02X\x00\x00\x00\x10ab.", "truncated"),
    (b"", "no pickle"),
])
def test_refused_and_damaged(raw, match):
  with pytest.raises(safe_pickle.PickleError, match=match):
    safe_pickle.loads(raw)


def _calls(tree):
  for node in ast.walk(tree):
    if isinstance(node, ast.Call):
      f = node.func
      name = (f"{getattr(f.value, 'id', '?')}.{f.attr}"
              if isinstance(f, ast.Attribute) else getattr(f, "id", "?"))
      yield name, node


def test_package_never_unpickles_unrestricted():
  """Scans every Python file of the package, launchers and configs."""
  offenders = []
  files = [p for d in ("zerodce_jax", "train", "benchmarks", "configs")
           for p in (ROOT / d).rglob("*.py")]
  assert len(files) > 30
  for path in files:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
      mods = []
      if isinstance(node, ast.Import):
        mods = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        mods = [node.module or ""]
      for m in mods:
        if m.split(".")[0] in ("pickle", "_pickle", "cPickle", "dill",
                               "cloudpickle", "joblib", "marshal", "shelve"):
          offenders.append(f"{path}: imports {m}")
    for name, call in _calls(tree):
      kw = {k.arg: k.value for k in call.keywords}
      safe_torch = (name == "torch.load"
                    and isinstance(kw.get("weights_only"), ast.Constant)
                    and kw["weights_only"].value is True)
      if name in ("torch.load", "pickle.load", "pickle.loads",
                  "pickle.Unpickler", "yaml.load") and not safe_torch:
        offenders.append(f"{path}:{call.lineno}: {name}")
      if name in ("np.load", "numpy.load") and not (
          isinstance(kw.get("allow_pickle"), ast.Constant)
          and kw["allow_pickle"].value is False):
        offenders.append(f"{path}:{call.lineno}: {name} without "
                         "allow_pickle=False")
  assert not offenders, offenders
