"""What every notebook shares: where its outputs go, and the figures it records for the tests.

A notebook starts with `nb = start("03_architecture", profile)`; it then saves plots with
`nb.savefig(fig, "rope_frequencies")` and records its key numbers with `nb.record(...)`. The
numbers land in `runs/<profile>/notebooks/<name>.json`, next to the executed copy that papermill
writes, so a test can assert on what the notebook computed.
"""

from __future__ import annotations

import json
from pathlib import Path

from .artifacts import runs_dir
from .profile import Profile, load_profile


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


def start(name: str, profile: str, runs_root: str | Path | None = None,
          overrides: dict | None = None) -> NotebookRun:
    """Load the profile (with `overrides` of single settings, {"section.key": value}) and prepare
    the notebook's output folders; the outputs stay under runs/<profile name>/."""
    return NotebookRun(name, load_profile(profile, overrides), runs_root)
