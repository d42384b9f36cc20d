"""The documentation runs: README.md and docs/*.md are checked like code.

* Every ```python block of a page runs, in order, in one namespace per page,
  in a fresh working folder that holds the bundled low-light sample as
  ``dark.jpg``. A block that is not meant to run is fenced as ```text (or
  any other language); keep the examples fast: no training loops.
* The README stays short, keeps the two set-up commands CI runs, and every
  relative link and image of the README and the docs points to a file that
  exists (and, for ``page.md#anchor``, to a heading of that page).
* The results tables in docs/results/ are what ``python -m benchmarks.report``
  makes from the JSON, and every one of them is included by a page.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SAMPLE = ROOT / "zerodce_jax" / "assets" / "sample_lowlight.jpg"
README_MAX_LINES = 260
SETUP_LINES = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install . && "
    "zerodce enhance --sample -o enhanced",
    "python3 -m venv .venv && . .venv/bin/activate && pip install -e "
    '".[test]" && python -m pytest -q',
)
# Pages that other work is writing (issue 22): links to them may dangle
# until they land. Empty this set once they exist.
PENDING: set[str] = set()
# Optional extras a block may need: skipped without them, unless strict.
EXTRAS = {"av": "video", "onnx": "export", "onnxruntime": "export",
          "tensorflow_datasets": "data"}
STRICT = os.environ.get("ZERODCE_STRICT") == "1"

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)"
                   r"(?:\s+\"[^\"]*\")?\)")
_INCLUDE = re.compile(r"^```\{include\}\s+(?P<target>\S+)", re.M)


def _pages() -> list[pathlib.Path]:
  """README.md and the Markdown sources of the docs (not the generated
  fragments in docs/results/, nor a build folder)."""
  pages = [ROOT / "README.md"]
  for p in sorted(DOCS.rglob("*.md")):
    rel = p.relative_to(DOCS).parts
    if rel[0] not in ("results", "_build"):
      pages.append(p)
  return pages


def _rel(path: pathlib.Path) -> str:
  return path.relative_to(ROOT).as_posix()


def code_blocks(text: str) -> list[tuple[int, str, str]]:
  """``(first line number, language, code)`` of every fenced block."""
  blocks, lines, i = [], text.split("\n"), 0
  while i < len(lines):
    m = _FENCE.match(lines[i])
    if not m:
      i += 1
      continue
    fence, info = m["fence"], m["info"].strip()
    body, j = [], i + 1
    while j < len(lines):
      close = _FENCE.match(lines[j])
      if (close and close["fence"][0] == fence[0]
          and len(close["fence"]) >= len(fence) and not close["info"].strip()):
        break
      body.append(lines[j])
      j += 1
    lang = info.split()[0] if info else ""
    blocks.append((i + 2, lang, "\n".join(body) + "\n"))
    i = j + 1
  return blocks


def _without_fences(text: str) -> str:
  """The page with its fenced blocks blanked out (line numbers kept)."""
  out, lines, inside = [], text.split("\n"), None
  for line in lines:
    m = _FENCE.match(line)
    if inside is None and m:
      inside = m["fence"]
      out.append("")
      continue
    if inside is not None:
      if m and m["fence"][0] == inside[0] and len(m["fence"]) >= len(inside) \
          and not m["info"].strip():
        inside = None
      out.append("")
      continue
    out.append(line)
  return "\n".join(out)


def _slug(heading: str) -> str:
  """The anchor GitHub and MyST give a heading."""
  text = re.sub(r"[`*_]", "", heading.strip().lower())
  text = re.sub(r"[^\w\- ]", "", text)
  return text.replace(" ", "-")


def _anchors(path: pathlib.Path) -> set[str]:
  text = _without_fences(path.read_text())
  return {_slug(m.group(1))
          for m in re.finditer(r"^#{1,6}\s+(.*)$", text, re.M)}


PAGES_WITH_CODE = [p for p in _pages()
                   if any(lang == "python"
                          for _, lang, _ in code_blocks(p.read_text()))]


def test_the_examples_are_there():
  names = {_rel(p) for p in PAGES_WITH_CODE}
  assert {"README.md", "docs/enhance.md", "docs/research.md"} <= names, names


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=_rel)
def test_python_blocks_run(page, tmp_path, monkeypatch):
  shutil.copy(SAMPLE, tmp_path / "dark.jpg")
  monkeypatch.chdir(tmp_path)
  namespace = {"__name__": "__docs__"}
  for line, lang, code in code_blocks(page.read_text()):
    if lang != "python":
      continue
    where = f"{_rel(page)}:{line}"
    try:
      exec(compile(code, where, "exec"), namespace)  # noqa: S102
    except ModuleNotFoundError as e:
      if e.name in EXTRAS and not STRICT:
        pytest.skip(f"{where} needs the {EXTRAS[e.name]} extra ({e.name})")
      raise


def test_readme_is_short_and_keeps_the_setup_commands():
  text = (ROOT / "README.md").read_text()
  n = len(text.splitlines())
  assert n <= README_MAX_LINES, f"README.md has {n} lines"
  lines = text.splitlines()
  for command in SETUP_LINES:
    assert command in lines, f"README.md lost the set-up line: {command}"


def _links(page: pathlib.Path):
  text = re.sub(r"`[^`\n]*`", "", _without_fences(page.read_text()))
  for m in _LINK.finditer(text):
    yield m["target"]
  for m in _INCLUDE.finditer(page.read_text()):
    yield m["target"]


def test_relative_links_point_to_files_and_headings():
  bad = []
  pages = _pages() + sorted((DOCS / "results").glob("*.md"))
  for page in pages:
    for target in _links(page):
      if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
        continue  # a URL, or an anchor of the page itself
      file, _, anchor = target.partition("#")
      path = (page.parent / file).resolve()
      try:
        shown = _rel(path)
      except ValueError:
        shown = str(path)
      if not path.exists():
        if shown not in PENDING:
          bad.append(f"{_rel(page)}: {target} (no such file)")
        continue
      if anchor and path.suffix == ".md" and anchor not in _anchors(path):
        bad.append(f"{_rel(page)}: {target} (no such heading)")
  assert not bad, "\n".join(bad)


def test_results_tables_are_generated_and_included():
  from benchmarks import report
  problems = report.check()
  assert not problems, ("\n".join(problems)
                        + "\nrun `python -m benchmarks.report`")
  included = set()
  for page in _pages():
    for m in _INCLUDE.finditer(page.read_text()):
      included.add((page.parent / m["target"]).resolve())
  fragments = {p.resolve() for p in (DOCS / "results").glob("*.md")}
  assert fragments, "no generated tables in docs/results"
  assert not fragments - included, sorted(
      _rel(p) for p in fragments - included)


def test_api_page_lists_every_public_name():
  import zerodce_jax
  text = (DOCS / "api.md").read_text()
  rows = {n: f"| `zerodce_jax.{n}` | {{py:obj}}`{zerodce_jax._API[n]}.{n}` |"
          for n in zerodce_jax.__all__ if n != "__version__"}
  missing = [row for row in rows.values() if row not in text]
  assert not missing, "docs/api.md lacks table rows:\n" + "\n".join(missing)


def test_code_blocks_parser():
  text = ("a\n```python\nx = 1\n```\n\n````{eval-rst}\n```python\ny\n```\n"
          "````\n~~~text\nz\n~~~\n")
  assert code_blocks(text) == [
      (3, "python", "x = 1\n"),
      (7, "{eval-rst}", "```python\ny\n```\n"),
      (12, "text", "z\n")]
