"""The tutorial notebook runs, start to end, in a real Jupyter kernel: what the README links
to works as it says. It runs in a folder of its own, so it writes nothing into the repository."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

TUTORIAL = Path(__file__).parent.parent / "docs" / "tutorial.ipynb"


def _text(cell) -> str:
    """What a code cell showed: its printed text and the repr of its value."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_the_committed_tutorial_has_no_outputs():
    notebook = nbformat.read(TUTORIAL, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")


@pytest.mark.slow
def test_the_tutorial_runs_in_a_kernel_and_shows_what_it_says(tmp_path, monkeypatch):
    shutil.copy(TUTORIAL, tmp_path / "tutorial.ipynb")
    notebook = nbformat.read(tmp_path / "tutorial.ipynb", as_version=4)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert not [output for cell in cells for output in cell.outputs if output.output_type == "error"]
    shown = {index: _text(cell) for index, cell in enumerate(cells)}
    trained, result, model, generated, scored = (shown[i] for i in range(1, 6))
    assert "training:" in trained and "Finished at step 300" in trained  # a bar, then the summary
    assert "--" not in trained.split("Finished at")[1]  # the advice in Python words
    assert result.startswith("Finished at step 300") and "bpc" in result and "nats" in result
    assert model.startswith("<charrnn Model: LSTM 2x64") and "bpc" in model
    assert generated.rstrip().endswith("6")  # 2 samples for each of 3 temperatures
    assert generated.count("'the ") == 6
    assert scored.strip().endswith("bpc")
    assert (tmp_path / "runs" / "tutorial" / "best.pt").is_file()
    assert '<pre id="output"' in (tmp_path / "tutorial.html").read_text(encoding="utf-8")  # the page to share
