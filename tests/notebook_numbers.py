"""Which numbers a notebook's prose states that its outputs do not show.

A *stated number* is a decimal (``0.949``, ``2.9``) or a percentage (``16%``) in a markdown
cell. It is *shown* when some output of the notebook (printed text, a table, a figure's
alt text) or some code cell holds a number that rounds to it at the prose's precision, or,
for a percentage, a fraction that does (``0.16`` for ``16%``) or the percentage itself.

Not checked: the header cell (its runtime comes from the course timing script), and text
marked as coming from elsewhere: a markdown cell containing ``<!-- literature -->`` or the
sections "Further reading" and "Exercises", and any sentence with "reported", "reports" or
"in the paper" (numbers from the literature, on real data).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

NUMBER = re.compile(r"(?<![\w.])[-−+]?\d{1,3}(?:,\d{3})*(?:\.\d+)?(?:\s?%)?|(?<![\w.])[-−+]?\d+(?:\.\d+)?(?:\s?%)?")
SKIP_SECTIONS = ("further reading", "exercises", "solutions")
LITERATURE = re.compile(r"reported|reports|in the paper|<!-- literature -->", re.I)


def _parse(token: str) -> tuple[float, int, bool]:
    """(value, decimals, is_percent) of a number token."""
    t = token.replace("−", "-").replace(",", "").replace(" ", "")
    percent = t.endswith("%")
    t = t.rstrip("%")
    decimals = len(t.split(".")[1]) if "." in t else 0
    return float(t), decimals, percent


def output_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append("".join(out["text"]))
        for kind in ("text/plain", "text/markdown", "text/html"):
            if kind in out.get("data", {}):
                parts.append("".join(out["data"][kind]))
    return "\n".join(parts)


def shown_numbers(nb: dict) -> list[float]:
    """Every number printed by the notebook or written in its code."""
    text = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            text.append("".join(cell["source"]))
            text.append(output_text(cell))
    values = []
    for tok in NUMBER.findall("\n".join(text)):
        try:
            values.append(abs(_parse(tok)[0]))
        except ValueError:
            continue
    return values


def _rounds_to(value: float, target: float, decimals: int) -> bool:
    scale = 10 ** decimals
    return abs(value * scale - target * scale) <= 0.5 + 1e-6


def is_shown(token: str, shown: list[float]) -> bool:
    value, decimals, percent = _parse(token)
    value = abs(value)
    for s in shown:
        if _rounds_to(s, value, decimals):
            return True
        if percent and _rounds_to(100 * s, value, decimals):
            return True
    return False


def prose_sentences(nb: dict):
    """(cell index, sentence) of every checked markdown sentence."""
    section_skipped = False
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "markdown" or i == 0:
            continue
        src = "".join(cell["source"])
        if "<!-- literature -->" in src:
            continue
        for block in re.split(r"\n(?=#)", src):
            head = re.match(r"#+\s*(?:\d+\.\s*)?(.*)", block)
            if head:
                section_skipped = head.group(1).strip().lower().startswith(SKIP_SECTIONS)
            if section_skipped:
                continue
            body = re.sub(r"`[^`]*`", "", block)                  # code spans: names, not claims
            body = re.sub(r"\]\([^)]*\)", "]", body)               # link targets
            for sentence in re.split(r"(?<=[.!?])\s+|\n", body):
                if not LITERATURE.search(sentence):
                    yield i, sentence


_DERIVED = re.compile(r"(\d[\d,]*(?:\.\d+)?)%?\s*(/|x|×|\*|-|\+)\s*(\d[\d,]*(?:\.\d+)?)%?\s*=\s*"
                      r"([-−+]?\d[\d,]*(?:\.\d+)?\s?%?)")


def derived(sentence: str) -> set[str]:
    """Results of arithmetic written out in the sentence (``1/441 = 0.002``,
    ``490 / 1,715 = +28.6%``) that are right: the reader can check them on the page."""
    ok = set()
    for a, op, b, c in _DERIVED.findall(sentence):
        x, y = float(a.replace(",", "")), float(b.replace(",", ""))
        value = {"/": x / y if y else float("nan"), "x": x * y, "×": x * y, "*": x * y,
                 "-": x - y, "+": x + y}[op]
        got, decimals, percent = _parse(c)
        if _rounds_to(abs(value * (100 if percent else 1)), abs(got), decimals):
            ok.add(c.strip())
    return ok


def unshown(path: str | Path) -> list[str]:
    """``"[cell] token: sentence"`` for every stated number the outputs do not show."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    shown = shown_numbers(nb)
    problems = []
    for i, sentence in prose_sentences(nb):
        worked = derived(sentence)
        for tok in NUMBER.findall(sentence):
            if "." not in tok and "%" not in tok:
                continue                                          # integers: counts, names
            if tok.strip() in worked:
                continue
            if not is_shown(tok, shown):
                problems.append(f"[{i}] {tok.strip()}: {sentence.strip()[:140]}")
    return problems
