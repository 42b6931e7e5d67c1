"""notebooks/train_and_deploy.ipynb: stored without outputs, and run headless on the local
backend (nbclient, a real kernel), every cell, with plots; nothing left running after."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "train_and_deploy.ipynb"


def test_the_notebook_is_stored_without_outputs():
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.mark.slow
def test_the_notebook_runs_headless_on_the_local_backend(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    workspace = tmp_path / "ws"
    monkeypatch.setenv("DOGBREED_WORKSPACE", str(workspace))  # the kernel inherits the environment
    monkeypatch.setenv("DOGBREED_TUNE_JOBS", "2")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}})
    try:
        client.execute()  # raises CellExecutionError, naming the cell, if any cell errors
    finally:
        from tests.conftest import dogbreed_cli

        # Whatever happened, no endpoint is left serving.
        dogbreed_cli("teardown", "--all", "--yes", "--set", f"workspace={workspace}", "--json")

    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert not [output for output in outputs if output.output_type == "error"]
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 3  # the trials, the training curves, the predictions
    last = notebook.cells[-1].outputs
    assert any(output.get("data", {}).get("text/plain") == "[]" for output in last)  # no endpoint left
    text = "".join(output.get("text", "") for output in outputs)
    assert "10 breeds, splits {'train': 80, 'valid': 10, 'test': 10}, 0 problem(s)" in text
    assert "deleted: ['notebook']" in text
