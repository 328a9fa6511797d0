"""The notebooks are stored executed, with their outputs, so that a reader on GitHub sees the figures.

Rebuild one after a change with ``OMP_NUM_THREADS=1 jupyter nbconvert --to notebook --execute --inplace
notebooks/NAME.ipynb`` (nbmake, in the test suite, executes them again without writing them).
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
FIGURES_LINE = 'FIGURES = Path("figures") if Path.cwd().name == "notebooks" else Path("notebooks", "figures")'


def code_cells(path: Path) -> list[dict]:
    return [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_code_cell_ran_once_in_order_from_a_fresh_kernel(path):
    """Execution counts 1, 2, ..., N: a cleared notebook has none, a stale or partial run has gaps or repeats."""
    counts = [cell["execution_count"] for cell in code_cells(path)]
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: execution counts {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_outputs_are_stored_without_errors(path):
    cells = code_cells(path)
    assert any(cell["outputs"] for cell in cells), f"{path.name}: stored without outputs"
    for index, cell in enumerate(cells):
        errors = [output for output in cell["outputs"] if output["output_type"] == "error"]
        assert not errors, f"{path.name}, code cell {index}: stored with an error"
        # a cell that prints or draws a figure has output; only a silent cell (imports, definitions) may have none
        prints = re.search(r"\bprint\(|plt\.show\(\)|FIGURES /", source(cell))
        assert cell["outputs"] or not prints, f"{path.name}, code cell {index}: its output is not stored"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_every_figure_is_written_under_notebooks_figures_and_stored_as_a_png(path):
    cells = code_cells(path)
    text = "\n".join(source(cell) for cell in cells)
    assert "savefig(" not in text.replace("savefig(FIGURES / ", ""), f"{path.name}: a figure saved elsewhere"
    if "FIGURES /" in text:
        assert FIGURES_LINE in text, f"{path.name}: FIGURES is not notebooks/figures"
    for index, cell in enumerate(cells):
        if "FIGURES /" in source(cell):
            images = [output for output in cell["outputs"] if "image/png" in output.get("data", {})]
            assert images, f"{path.name}, code cell {index}: writes a figure but stores no PNG output"
