"""`mimo-lite notebooks`: `--resume` goes on where the last command stopped, `--notebooks` picks the
folder, and runs that share a runs root keep every notebook's run time."""
import json

import nbformat
import pytest

from mimo_lite.cli import main, run_notebooks


def write_notebooks(folder, counter):
    """Two notebooks, each adding its name to `counter` when it runs."""
    folder.mkdir()
    for name in ("00_first", "01_second"):
        nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                                "display_name": "Python 3"}})
        nb.cells = [nbformat.v4.new_code_cell("profile = 'toy'\nruns_root = None\noverrides = {}",
                                              metadata={"tags": ["parameters"]}),
                    nbformat.v4.new_code_cell(f"open({str(counter)!r}, 'a').write('{name}\\n')")]
        nbformat.write(nb, folder / f"{name}.ipynb")


def test_resume_skips_the_notebooks_that_finished(tmp_path):
    folder = tmp_path / "notebooks"
    counter = tmp_path / "executions.txt"
    write_notebooks(folder, counter)
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


def test_the_notebooks_folder_is_chosen_on_the_command_line(tmp_path, capsys):
    folder, counter = tmp_path / "mine", tmp_path / "executions.txt"
    write_notebooks(folder, counter)
    main(["notebooks", "--profile", "smoke", "--runs", str(tmp_path / "runs"), "--notebooks", str(folder),
          "--only", "01"])
    assert counter.read_text().split() == ["01_second"]
    with pytest.raises(SystemExit, match="No notebooks found in .*empty.* pass --notebooks DIR"):
        main(["notebooks", "--profile", "smoke", "--notebooks", str(tmp_path / "empty")])


def test_two_runs_sharing_a_folder_keep_both_run_times(tmp_path):
    """`note_run_time` holds the folder's lock while it reads and rewrites run_times.json."""
    import fcntl
    import threading

    from mimo_lite.notebook import note_run_time

    note_run_time(tmp_path, "00_first", "smoke", 1.0)
    lock = open(tmp_path / ".run_times.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)                 # another run is writing
    second = threading.Thread(target=note_run_time, args=(tmp_path, "01_second", "smoke", 2.0))
    second.start()
    second.join(timeout=1.0)
    assert second.is_alive(), "wrote run_times.json while another run held the folder"
    lock.close()
    second.join(timeout=10)
    times = json.loads((tmp_path / "run_times.json").read_text())
    assert {name: t["wall_s"] for name, t in times.items()} == {"00_first": 1.0, "01_second": 2.0}
