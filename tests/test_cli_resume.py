"""`mimo-lite notebooks --resume`: a sequence cut into commands goes on where the last one stopped."""
import nbformat

from mimo_lite.cli import run_notebooks


def test_resume_skips_the_notebooks_that_finished(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    counter = tmp_path / "executions.txt"
    for name in ("00_first", "01_second"):
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                "display_name": "Python 3"}})
        nb.cells = [nbformat.v4.new_code_cell("profile = 'toy'\nruns_root = None\noverrides = {}",
                                              metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(f"open({str(counter)!r}, 'a').write('{name}\\n')")]
        nbformat.write(nb, folder / f"{name}.ipynb")
    runs = tmp_path / "runs"

    first = run_notebooks("smoke", runs_root=str(runs), notebooks_dir=folder, resume=True)
    again = run_notebooks("smoke", runs_root=str(runs), notebooks_dir=folder, resume=True)
    assert [p.stem for p in first] == ["00_first", "01_second"]
    assert again == []
    assert counter.read_text().split() == ["00_first", "01_second"]

    (runs / "smoke" / "notebooks" / "01_second.ipynb").unlink()     # cut off: no executed copy
    rerun = run_notebooks("smoke", runs_root=str(runs), notebooks_dir=folder, resume=True)
    assert [p.stem for p in rerun] == ["01_second"]
    run_notebooks("smoke", runs_root=str(runs), notebooks_dir=folder)   # without --resume: all again
    assert counter.read_text().split() == ["00_first", "01_second", "01_second", "00_first", "01_second"]
