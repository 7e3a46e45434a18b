"""What every notebook shares: where its outputs go, and the figures it records for the tests.

A notebook starts with `nb = start("03_architecture", profile)`; it then saves plots with
`nb.savefig(fig, "rope_frequencies")` and records its key numbers with `nb.record(...)`. The
numbers land in `runs/<profile>/notebooks/<name>.json`, next to the executed copy that papermill
writes, so a test can assert on what the notebook computed.

Run times: `mimo-lite notebooks` writes each notebook's wall time to
`runs/<profile>/notebooks/run_times.json`; `mimo-lite record-times` copies a run's times into the
kit's record (`mimo_lite/run_times.json`, one entry per profile), and `start` prints this
notebook's recorded times at every profile, and this machine's last one.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from .artifacts import claim, runs_dir, write_json
from .profile import Profile, load_profile


def find_notebooks(folder: str | Path, only: list[str] | None = None) -> list[Path]:
    """The notebooks of `folder` in course order: `NN_name.ipynb`, where a notebook split in two
    continues as `NNb_name.ipynb` right after `NN` (05, 05b, 06, …). `only`: numbers or names, each
    selecting one notebook ("05" is 05 alone, "05b" its second part).

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> for n in ("06_sft", "05b_mtp_speculative", "05_inference", "scratch"):
    ...     _ = (d / f"{n}.ipynb").write_text("{}")
    >>> [p.stem for p in find_notebooks(d)]
    ['05_inference', '05b_mtp_speculative', '06_sft']
    >>> [p.stem for p in find_notebooks(d, ["05"])]
    ['05_inference']
    """
    notebooks = sorted(nb for pattern in ("[0-9][0-9]_*.ipynb", "[0-9][0-9][a-z]_*.ipynb")
                       for nb in Path(folder).glob(pattern))   # "05_" sorts before "05b_": "_" < "b"
    if only:
        notebooks = [nb for nb in notebooks if nb.stem.split("_")[0] in only or nb.stem in only]
    return notebooks


class NotebookRun:
    def __init__(self, name: str, profile: Profile, runs_root: str | Path | None = None):
        self.name, self.profile = name, profile
        profile.use_threads()
        self.dir = runs_dir(profile.name, runs_root)              # artifacts: runs/<profile>/
        self.out = self.dir / "notebooks"                          # executed copies and figures
        self.figures = self.out / "figures" / name
        self.figures.mkdir(parents=True, exist_ok=True)
        self.record_path = self.out / f"{name}.json"
        self.records: dict = {}
        self._write()

    def record(self, **numbers) -> None:
        """Keep key figures (JSON-serialisable) for the tests and the reader."""
        self.records.update(numbers)
        self._write()

    def savefig(self, fig, name: str) -> Path:
        path = self.figures / f"{name}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        return path

    def _write(self) -> None:
        tmp = self.record_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"notebook": self.name, "profile": self.profile.name,
                                   **self.records}, indent=2, default=float))
        tmp.replace(self.record_path)


RUN_TIMES = Path(__file__).parent / "run_times.json"   # the kit's record: {profile: {machine, date, notebooks}}


def start(name: str, profile: str, runs_root: str | Path | None = None,
          overrides: dict | None = None) -> NotebookRun:
    """Load the profile (with `overrides` of single settings, {"section.key": value}) and prepare
    the notebook's output folders; the outputs stay under runs/<profile name>/. Prints where it
    runs and the notebook's recorded run times."""
    run = NotebookRun(name, load_profile(profile, overrides), runs_root)
    print(f"profile {run.profile.name!r} on {run.profile.torch_device} ({machine()}), {run.profile.dtype}")
    print(run_time_line(name, run.out / "run_times.json"))
    return run


def machine() -> str:
    """This machine in a few words, for a run-time record."""
    try:
        import torch
        if torch.cuda.is_available():
            return f"{torch.cuda.device_count()} × {torch.cuda.get_device_name(0)}"
    except ImportError:                                    # pragma: no cover - torch is required
        pass
    return f"{os.cpu_count()} CPU cores ({platform.machine()})"


def note_run_time(folder: Path, name: str, profile: str, wall_s: float) -> None:
    """Add one notebook's wall time to `folder/run_times.json` (what `mimo-lite notebooks` ran).
    Two runs of `mimo-lite notebooks` may share the folder: one at a time reads and rewrites it."""
    path = Path(folder) / "run_times.json"
    with claim(Path(folder) / ".run_times.lock"):
        times = json.loads(path.read_text()) if path.exists() else {}
        times[name] = dict(wall_s=round(wall_s, 1), profile=profile, machine=machine(),
                           finished=time.strftime("%Y-%m-%d %H:%M"))
        write_json(path, times)


def record_run_times(profile: str, runs_root: str | Path | None = None, how: str = "",
                     record: Path = RUN_TIMES) -> dict:
    """Copy the run times of `runs/<profile>/notebooks/` into the kit's record, as `profile`'s
    entry (`how`: a few words on the run, e.g. "fresh clone, nothing pre-built")."""
    path = runs_dir(profile, runs_root) / "notebooks" / "run_times.json"
    if not path.exists():
        raise SystemExit(f"No run times in {path}: run `mimo-lite notebooks --profile {profile}` first.")
    times = json.loads(path.read_text())
    entry = dict(machine=sorted({t["machine"] for t in times.values()}), how=how,
                 finished=max(t["finished"] for t in times.values()),
                 notebooks={n: t["wall_s"] for n, t in sorted(times.items())},
                 total_s=round(sum(t["wall_s"] for t in times.values()), 1))
    kit = json.loads(Path(record).read_text()) if Path(record).exists() else {}
    kit[profile] = entry
    write_json(Path(record), kit)
    return entry


def run_time_line(name: str, local: Path | None = None, record: Path = RUN_TIMES) -> str:
    """'Run time of <name>, recorded: toy 383 s (2 CPU cores, …) · …; here: …' from the records."""
    kit = json.loads(Path(record).read_text()) if Path(record).exists() else {}
    parts = [f"{p} {e['notebooks'][name]:.0f} s ({', '.join(e['machine'])}; {e['how'] or 'recorded'}, {e['finished'][:10]})"
             for p, e in kit.items() if name in e.get("notebooks", {})]
    line = f"Run time of {name}, recorded: " + (" · ".join(parts) if parts else "none yet")
    mine = json.loads(local.read_text()).get(name) if local and Path(local).exists() else None
    if mine:
        line += f"; its last run here: {mine['wall_s']:.0f} s at {mine['profile']!r} ({mine['finished']})"
    return line


def watch(handles: dict, metrics: dict, key: str, every: float = 10.0, title: str = "") -> dict:
    """Wait for runs queued with `artifacts.Jobs` while drawing their training curves live.

    handles: {label: handle}; metrics: {label: [metrics.jsonl paths, first found is read]} (a
    run's working folder while it trains, its artifact once built). Every `every` seconds the
    figure is redrawn in place from what each run has logged so far (`key` against step); the
    executed notebook keeps the last drawing, the finished curves. With one process a handle runs
    its call here when asked (its own progress bar shows), and the figure is drawn once at the end.
    Returns {label: result}.
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .train.run import read_metrics

    fig, ax = plt.subplots(figsize=(9, 3.2))
    shown = display(fig, display_id=True)
    plt.close(fig)

    def draw():
        ax.clear()
        for label, paths in metrics.items():
            found = next((Path(p) for p in paths if Path(p).exists()), None)
            rows = [r for r in read_metrics(found) if key in r] if found else []
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], label=f"{label} ({len(rows)} steps)")
        ax.set(title=title or f"{key}, as the runs train", xlabel="step", ylabel=key)
        ax.legend(fontsize=8)
        if shown is not None:
            shown.update(fig)

    pending = [h for h in handles.values() if hasattr(h, "done")]       # running in worker processes
    while not all(h.done() for h in pending):
        draw()
        time.sleep(every)
    results = {label: h.result() for label, h in handles.items()}
    draw()
    return results
