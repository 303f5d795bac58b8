"""The committed notebooks are clean: their outputs come from a fresh top-to-bottom run and
hold nothing machine-specific or noisy, and their links lead somewhere.

The notebooks are read as JSON, never executed. One test per notebook and rule, so a failure
names the notebook and the rule, and its message lists every offending cell (0-based index in
the notebook's ``cells``, with its ``In [n]`` number) and a snippet of the text.

Rules, for committed outputs:

* ``paths``: no absolute machine path (``/work/``, ``/home/``, ``/root/``, ``/tmp/``,
  ``/Users/``, ``/private/``..., ``C:\\``) and no ``site-packages`` / ``.venv`` path in any
  textual output (stream, text/plain, text/html without its ``data:`` URIs, tracebacks), nor
  in the notebook's or a cell's metadata;
* ``errors``: no ``error`` output and no ``Traceback (most recent call last)``;
* ``stderr``: no ``stderr`` stream;
* ``warnings``: no warning text (``Warning:``, ``UserWarning``, ``TqdmWarning``...);
* ``reprs``: no stray repr as a cell's result: an ``execute_result`` (or a ``display_data``)
  that is only ``text/plain`` and reads ``Text(...)``, ``<matplotlib....>``, ``<Figure size``,
  ``<Axes``, ``<... object at 0x...>``; a figure shown with its image is fine;
* ``executed``: every code cell with source was executed, in order (``In [n]`` strictly
  increasing from 1: one fresh run, top to bottom);

and for markdown cells:

* ``links``: every link (``[text](target)``, ``[ref]: target``, ``<a href>``, ``<img src>``)
  goes to an ``http(s)://`` URL (the course outline included), an in-page ``#anchor``, an
  existing notebook of ``notebooks/``, or (images only) an existing file; a notebook file name
  ``NN_name.ipynb`` mentioned in the prose must exist too. References such as "notebook 09"
  in prose are not links and are not checked.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO_DIR / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))

# --- what is looked for -----------------------------------------------------------------------
_MACHINE_PATH = re.compile(
    r"(?<![\w.~:/\\-])/(?:work|home|root|tmp|Users|private|mnt|opt|srv|var|usr|scratch|content|"
    r"kaggle|Volumes)/"
    r"|(?<![A-Za-z])[A-Za-z]:\\(?=[\w .$-])"
    r"|\b(?:site|dist)-packages\b"
    r"|(?<![\w-])\.venv\b")
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)")
_WARNING = re.compile(r"\b\w*Warning\b|(?i:\bwarning:)")
_REPR = re.compile(r"\bText\(|\[?<matplotlib\.|<Figure size|<Axes\b|<AxesSubplot|"
                   r"<[\w.]+ object at 0x[0-9a-fA-F]+>")
_DATA_URI = re.compile(r"data:[\w/+.-]+;base64,[A-Za-z0-9+/=\s]*")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")
_RICH_MIMES = ("image/", "text/html", "text/markdown", "text/latex", "application/",
               "audio/", "video/")

_FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.M | re.S)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"(!?)\[(?:[^\]\\]|\\.)*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+(?:\"[^\"]*\"|'[^']*'|"
                   r"\([^)]*\)))?\s*\)")
_REF_LINK = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
_HTML_LINK = re.compile(r"<(a|img)\b[^>]*?\b(?:href|src)\s*=\s*[\"']([^\"']*)[\"']", re.I)
_NOTEBOOK_NAME = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*\d\d_[\w.-]*?\.ipynb)\b")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else (value or "")


def _snippet(text: str, start: int, end: int, width: int = 50) -> str:
    piece = text[max(0, start - width):end + width]
    piece = _ANSI.sub("", piece).strip()
    return repr(piece if len(piece) <= 160 else piece[:157] + "...")


def _where(index: int, cell: dict, what: str) -> str:
    count = cell.get("execution_count")
    run = f", In [{count}]" if cell.get("cell_type") == "code" else ""
    return f"cell {index}{run}, {what}"


def _output_texts(output: dict):
    """(label, text) of each textual part of one output."""
    kind = output.get("output_type")
    if kind == "stream":
        yield output.get("name", "stream"), _text(output.get("text"))
    elif kind == "error":
        yield "error", "\n".join([f"{output.get('ename')}: {output.get('evalue')}"]
                                 + [_text(t) for t in output.get("traceback", [])])
    elif kind in ("execute_result", "display_data", "update_display_data"):
        for mime, value in output.get("data", {}).items():
            if mime in _TEXT_MIMES or mime.endswith("+json"):
                text = value if isinstance(value, (str, list)) else json.dumps(value)
                yield f"{kind} {mime}", _DATA_URI.sub("data:...", _text(text))


def _find(pattern: re.Pattern, index: int, cell: dict, label: str, text: str) -> list[str]:
    """One problem per line of ``text`` that matches, with the line around the first match."""
    problems = []
    for line in text.splitlines():
        m = pattern.search(line)
        if m:
            snippet = _snippet(line, m.start(), m.end(), 70)
            problems.append(f"{_where(index, cell, label)}: {snippet}")
    return problems


def _outputs(nb: dict):
    for index, cell in enumerate(nb.get("cells", [])):
        for output in cell.get("outputs", []) or []:
            yield index, cell, output


# --- the rules (each returns a list of problems, one line each) -------------------------------
def check_paths(nb: dict) -> list[str]:
    problems = []
    for index, cell, output in _outputs(nb):
        for label, text in _output_texts(output):
            problems += _find(_MACHINE_PATH, index, cell, label, text)
    meta = json.dumps(nb.get("metadata", {}))
    problems += [f"notebook metadata: {_snippet(meta, m.start(), m.end(), 70)}"
                 for m in _MACHINE_PATH.finditer(meta)]
    for index, cell in enumerate(nb.get("cells", [])):
        meta = json.dumps(cell.get("metadata", {}))
        problems += _find(_MACHINE_PATH, index, cell, "cell metadata", meta)
    return problems


def check_errors(nb: dict) -> list[str]:
    problems = []
    for index, cell, output in _outputs(nb):
        if output.get("output_type") == "error":
            text = f"{output.get('ename')}: {output.get('evalue')}"
            problems.append(f"{_where(index, cell, 'error output')}: {_snippet(text, 0, 0, 80)}")
            continue
        for label, text in _output_texts(output):
            problems += _find(_TRACEBACK, index, cell, label, text)
    return problems


def check_stderr(nb: dict) -> list[str]:
    problems = []
    for index, cell, output in _outputs(nb):
        if output.get("output_type") == "stream" and output.get("name") == "stderr":
            text = _text(output.get("text"))
            problems.append(f"{_where(index, cell, 'stderr')}: {_snippet(text, 0, 0, 100)}")
    return problems


def check_warnings(nb: dict) -> list[str]:
    problems = []
    for index, cell, output in _outputs(nb):
        for label, text in _output_texts(output):
            problems += _find(_WARNING, index, cell, label, text)
    return problems


def check_reprs(nb: dict) -> list[str]:
    problems = []
    for index, cell, output in _outputs(nb):
        kind = output.get("output_type")
        data = output.get("data", {})
        if kind not in ("execute_result", "display_data"):
            continue
        if any(mime.startswith(_RICH_MIMES) for mime in data):
            continue                      # e.g. a figure shown with its image
        text = _text(data.get("text/plain"))
        problems += _find(_REPR, index, cell, f"{kind} text/plain", text)
    return problems


def check_executed(nb: dict) -> list[str]:
    problems, last = [], 0
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code" or not _text(cell.get("source")).strip():
            continue
        count = cell.get("execution_count")
        source = _text(cell.get("source"))
        if count is None:
            problems.append(f"{_where(index, cell, 'never executed')}: "
                            f"{_snippet(source, 0, 0, 60)}")
            continue
        if count <= last or (last == 0 and count != 1):
            problems.append(f"{_where(index, cell, f'run out of order (after In [{last}])')}: "
                            f"{_snippet(source, 0, 0, 60)}")
        last = count
    return problems


def _link_problem(target: str, image: bool, cell: dict) -> str | None:
    """Why a link target is not acceptable, or None."""
    target = target.strip().strip("<>")
    if re.match(r"(?i)https?://", target) or target.startswith("#") or target.startswith(
            "mailto:"):
        return None
    if target.startswith("attachment:"):
        name = unquote(target[len("attachment:"):])
        return None if name in (cell.get("attachments") or {}) else "missing attachment"
    if not target:
        return "empty link"
    local = unquote(re.split(r"[#?]", target, maxsplit=1)[0])
    if re.match(r"(?i)[a-z][a-z0-9+.-]*:", local) or local.startswith(("/", "\\")):
        return "link to an absolute path or a non-http URL"
    resolved = (NOTEBOOK_DIR / local).resolve()
    if local.endswith(".ipynb"):
        if resolved.parent == NOTEBOOK_DIR.resolve() and resolved.is_file():
            return None
        return "link to a notebook that does not exist in notebooks/"
    if image and resolved.is_file():
        return None
    if resolved.is_file() and resolved.suffix == ".md" and REPO_DIR in resolved.parents:
        return None  # a document of the repository, e.g. the README's course plan
    return ("link to a local file that is not a notebook (link to an existing notebook, to a "
            "document of the repository such as ../README.md#the-course, or to an http URL)")


def check_links(nb: dict) -> list[str]:
    problems = []
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "markdown":
            continue
        source = _text(cell.get("source"))
        prose = _INLINE_CODE.sub(lambda m: " " * len(m.group()), _FENCE.sub(
            lambda m: " " * len(m.group()), source))
        found = [(m, m.group(2), m.group(1) == "!") for m in _LINK.finditer(prose)]
        found += [(m, m.group(1), False) for m in _REF_LINK.finditer(prose)]
        found += [(m, m.group(2), m.group(1).lower() == "img") for m in _HTML_LINK.finditer(prose)]
        spans = []
        for m, target, image in found:
            spans.append((m.start(), m.end()))
            why = _link_problem(target, image, cell)
            if why:
                snippet = _snippet(source, m.start(), m.end(), 0)
                problems.append(f"{_where(index, cell, why)}: {snippet}")
        for m in _NOTEBOOK_NAME.finditer(source):
            if any(a <= m.start() < b for a, b in spans):
                continue
            if _link_problem(m.group(1), False, cell):
                problems.append(f"{_where(index, cell, 'names a notebook that does not exist')}: "
                                f"{_snippet(source, m.start(), m.end(), 30)}")
    return problems


CHECKS = {"paths": check_paths, "errors": check_errors, "stderr": check_stderr,
          "warnings": check_warnings, "reprs": check_reprs, "executed": check_executed,
          "links": check_links}
WHAT = {"paths": "absolute machine path in an output", "errors": "error or traceback in an output",
        "stderr": "stderr output", "warnings": "warning in an output",
        "reprs": "stray repr as a cell result", "executed": "cell not executed in order",
        "links": "link that leads nowhere"}


def _load(path: Path) -> dict:
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        pytest.fail(f"{path.name}: cannot read the notebook ({exc})", pytrace=False)
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        pytest.fail(f"{path.name}: not a notebook (no 'cells' list)", pytrace=False)
    return nb


# --- the tests over the committed notebooks ---------------------------------------------------
def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks in {NOTEBOOK_DIR}"


def test_notebooks_are_valid_nbformat():
    nbformat = pytest.importorskip("nbformat")
    bad = []
    for path in NOTEBOOKS:
        try:
            nbformat.validate(nbformat.read(path, as_version=nbformat.NO_CONVERT))
        except Exception as exc:  # noqa: BLE001 - any failure is reported with the file
            bad.append(f"{path.name}: {str(exc).splitlines()[0]}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("rule", list(CHECKS))
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_notebook(path, rule):
    problems = CHECKS[rule](_load(path))
    if problems:
        pytest.fail(f"notebooks/{path.name}: {len(problems)} x {WHAT[rule]}:\n  "
                    + "\n  ".join(problems), pytrace=False)


# --- the rules themselves, on small made-up notebooks -----------------------------------------
def _code(source="x = 1", count=1, outputs=()):
    return {"cell_type": "code", "source": source, "execution_count": count, "metadata": {},
            "outputs": list(outputs)}


def _md(source):
    return {"cell_type": "markdown", "source": source, "metadata": {}}


def _stream(text, name="stdout"):
    return {"output_type": "stream", "name": name, "text": text}


def _result(data, count=1, kind="execute_result"):
    out = {"output_type": kind, "data": data, "metadata": {}}
    if kind == "execute_result":
        out["execution_count"] = count
    return out


def _nb(*cells, metadata=None):
    return {"cells": list(cells), "metadata": metadata or {}, "nbformat": 4, "nbformat_minor": 5}


def _clean_notebook() -> dict:
    existing = NOTEBOOKS[0].name if NOTEBOOKS else "00_quickstart.ipynb"
    return _nb(
        _md(f"# Title\nSee [the quickstart]({existing}), [the outline](https://example.org/"
            f"home/outline), [below](#summary), `nothing.ipynb` is code and "
            "notebook 09 is prose; `[x](nowhere.md)` in code is not a link.\n"
            "```\n[y](nowhere.md)\n```"),
        _code("import mmkit", 1, [_stream("mmkit setup: seed=0 device=cpu data=data out=out\n")]),
        _code("fig", 2, [_result({"image/png": "iVBORw0KGgo/home/xyz/tmp/", "text/plain":
                                  "<Figure size 640x480 with 1 Axes>"}, 2)]),
        _code("", None),                                      # empty cell: need not run
        _code("print('ViT-B/32 i2t R@1 / R@5: see https://x.io/tmp/a')", 4,
              [_stream("ViT-B/32: 0.5 / 0.6, https://x.io/tmp/a\n")]),
        _code("audio", 5, [_result({"text/html": '<audio src="data:audio/wav;base64,AAAA/tmp/'
                                                 'site-packages+AAA="></audio>',
                                    "text/plain": "<IPython.lib.display.Audio object>"}, 5)]),
        _md("## Summary"),
    )


def test_clean_notebook_passes_every_rule():
    nb = _clean_notebook()
    for rule, check in CHECKS.items():
        assert check(nb) == [], rule


@pytest.mark.parametrize("rule, cell, snippet", [
    ("paths", _code("s()", 1, [_stream("data=/work/main/data out=/work/main/out\n")]),
     "/work/main/data"),
    ("paths", _code("s()", 1, [_stream("saved to /home/ann/x.png\n")]), "/home/ann"),
    ("paths", _code("s()", 1, [_stream("cache /root/.cache\n")]), "/root/"),
    ("paths", _code("s()", 1, [_stream("'/tmp/abc'\n")]), "/tmp/abc"),
    ("paths", _code("s()", 1, [_result({"text/plain": "PosixPath('/Users/bob/data')"})]),
     "/Users/bob"),
    ("paths", _code("s()", 1, [_stream("/private/var/folders/x\n")]), "/private/"),
    ("paths", _code("s()", 1, [_stream("C:\\Users\\bob\\data\n")]), "C:\\\\Users"),
    ("paths", _code("s()", 1, [_stream("lib/python3.11/site-packages/tqdm\n", "stdout")]),
     "site-packages"),
    ("paths", _code("s()", 1, [_stream("using .venv/bin/python\n")]), ".venv"),
    ("paths", _code("s()", 1, [_result({"text/html": "<p>/home/ann/x</p>"}, kind="display_data")]),
     "/home/ann"),
    ("errors", _code("1/0", 1, [{"output_type": "error", "ename": "ZeroDivisionError",
                                 "evalue": "division by zero", "traceback": []}]),
     "ZeroDivisionError"),
    ("errors", _code("s()", 1, [_stream("Traceback (most recent call last):\n  File x\n")]),
     "Traceback"),
    ("stderr", _code("s()", 1, [_stream("progress 10%\n", "stderr")]), "progress 10%"),
    ("warnings", _code("s()", 1, [_stream("x.py:3: TqdmWarning: IProgress not found\n")]),
     "TqdmWarning"),
    ("warnings", _code("s()", 1, [_stream("UserWarning: careful\n")]), "UserWarning"),
    ("warnings", _code("s()", 1, [_stream("RuntimeWarning: overflow\n")]), "RuntimeWarning"),
    ("warnings", _code("s()", 1, [_stream("DeprecationWarning: old\n")]), "DeprecationWarning"),
    ("warnings", _code("s()", 1, [_stream("Warning: slow\n")]), "Warning: slow"),
    ("reprs", _code("ax.set_title('t')", 1, [_result({"text/plain": "Text(0.5, 1.0, 't')"})]),
     "Text(0.5"),
    ("reprs", _code("ax.plot(x)", 1, [_result(
        {"text/plain": "[<matplotlib.lines.Line2D at 0x7f00>]"})]), "[<matplotlib.lines"),
    ("reprs", _code("plt.figure()", 1, [_result(
        {"text/plain": "<Figure size 640x480 with 0 Axes>"})]), "<Figure size"),
    ("reprs", _code("plt.gca()", 1, [_result({"text/plain": "<Axes: >"})]), "<Axes"),
    ("reprs", _code("obj", 1, [_result({"text/plain": "<mmkit.Thing object at 0x7f3a>"})]),
     "object at 0x7f3a"),
    ("executed", _code("x = 2", None), "never executed"),
    ("executed", _code("x = 2", 1), "out of order"),
    ("links", _md("See [notebook 09](09_cross_domain.ipynb)."), "09_cross_domain.ipynb"),
    ("links", _md("See [the outline](../shared/outline.md)."), "../shared/outline.md"),
    ("links", _md("See [the plan](../README-missing.md)."), "../README-missing.md"),
    ("links", _md("See [x](/work/main/notebooks/00_quickstart.ipynb)."), "absolute"),
    ("links", _md("See [x](file:///tmp/x.ipynb)."), "non-http"),
    ("links", _md('See <a href="10_real.ipynb">it</a>.'), "10_real.ipynb"),
    ("links", _md("See [it][r].\n\n[r]: 03_speech.ipynb"), "03_speech.ipynb"),
    ("links", _md("Next: 04_cca.ipynb, then more."), "04_cca.ipynb"),
    ("links", _md("![plot](figures/missing.png)"), "missing.png"),
])
def test_each_rule_fires(rule, cell, snippet):
    nb = _clean_notebook()
    nb["cells"].insert(2, cell)
    if rule == "executed":                            # In [1] after In [1]: out of order
        for later in nb["cells"][3:]:
            if later.get("execution_count") is not None:
                later["execution_count"] += 10
    else:                                             # a clean run: In [1], In [2], ...
        ran = [c for c in nb["cells"] if c["cell_type"] == "code" and c["source"].strip()]
        for n, c in enumerate(ran, start=1):
            c["execution_count"] = n
    problems = CHECKS[rule](nb)
    assert len(problems) >= 1, problems
    assert all(p.startswith("cell 2") for p in problems), problems
    assert any(snippet in p for p in problems), problems
    for other in CHECKS:                              # one problem, one rule
        if other != rule and (rule, other) not in {("paths", "warnings"), ("warnings", "paths")}:
            assert CHECKS[other](nb) == [], (other, CHECKS[other](nb))


def test_metadata_paths_are_found():
    nb = _clean_notebook()
    nb["metadata"]["vscode"] = {"interpreter": {"path": "/home/ann/.venv/bin/python"}}
    assert any(p.startswith("notebook metadata") for p in check_paths(nb))


def test_problems_name_cell_and_run_number():
    nb = _nb(_code("print(1)", 1, [_stream("oops\n", "stderr")]))
    assert check_stderr(nb) == ["cell 0, In [1], stderr: 'oops'"]
