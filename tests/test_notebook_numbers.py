"""Every decimal or percentage a notebook's prose states is one its outputs show
(``tests/notebook_numbers.py`` says what counts), and the check itself catches what it should."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from notebook_numbers import derived, is_shown, unshown

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_prose_numbers_are_on_screen(path):
    problems = unshown(path)
    assert not problems, f"{path.name}: numbers in the prose that no output shows:\n" + \
        "\n".join(problems)


def _notebook(tmp_path, markdown: list[str], printed: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# header 9.99")]
    code = nbformat.v4.new_code_cell("print(results)")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells.append(code)
    nb.cells += [nbformat.v4.new_markdown_cell(m) for m in markdown]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    return path


def test_the_check_catches_a_stale_number_and_accepts_true_ones(tmp_path):
    path = _notebook(tmp_path, [
        "R@1 rises to 0.412 (from 0.38), a gain of 8.4%.",       # 0.412 shown, 0.38 shown
        "The old run said 0.5 and 12%.",                        # neither shown
        "Chance is 1/441 = 0.002; 5 captions; section 3.",        # derivation, integers
        "Published: R@1 52.9, as reported by the authors.",     # literature sentence
        "<!-- literature -->\n| a | 69.1 |",                    # literature cell
        "## Further reading\n- a paper with 77.7 R@1",           # skipped section
    ], "R@1 0.4117 0.3812 gain 0.0842\n")
    problems = unshown(path)
    assert [p.split(":")[0] for p in problems] == ["[3] 0.5", "[3] 12%"]


def test_rounding_and_percent_rules():
    assert is_shown("0.41", [0.4117]) and not is_shown("0.42", [0.4117])
    assert is_shown("16%", [0.162]) and is_shown("-16%", [16.2]) and not is_shown("8%", [0.162])
    assert is_shown("1,715", [1715.0])
    assert derived("at most 490 / 1,715 = +28.6% of it") == {"+28.6%"}
    assert derived("so 2 x 3 = 7 is wrong") == set()
