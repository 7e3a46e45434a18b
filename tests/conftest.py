import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory) -> Path:
    """One runs/ root for the whole session, so notebooks can reuse what earlier ones built."""
    return Path(os.environ.get("MIMO_LITE_TEST_RUNS") or tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def run_notebook(smoke_runs):
    """run_notebook("03") executes notebooks/03_*.ipynb at the smoke profile once per session and
    returns its records (a notebook's later tests get the same records and executed copy).

    It fails when the run creates a later notebook's artifact in the runs root (see artifact_owners).
    """
    from artifact_owners import artifact_folders, artifacts_built_too_early
    from mimo_lite.artifacts import runs_dir
    from mimo_lite.cli import run_notebooks

    executed_records = {}

    def run(prefix: str) -> dict:
        if prefix in executed_records:                # a notebook's second test reads the same run
            return json.loads(executed_records[prefix].read_text())
        before = artifact_folders(runs_dir("smoke", smoke_runs))
        [executed] = run_notebooks("smoke", only=[prefix], runs_root=str(smoke_runs),
                                   notebooks_dir=NOTEBOOKS)
        too_early = artifacts_built_too_early(runs_dir("smoke", smoke_runs), prefix, before)
        if too_early:
            pytest.fail(f"notebook {prefix} may use only the artifacts of notebooks before it: "
                        + "; ".join(too_early))
        executed_records[prefix] = executed.with_suffix(".json")
        return json.loads(executed_records[prefix].read_text())

    return run


def pytest_configure(config):
    # The unit tests use models of a few thousand parameters, for which one thread is fastest and
    # results are bitwise repeatable; notebooks run in their own kernels with their own settings.
    import torch

    torch.set_num_threads(1)


# Under pytest-xdist (`make test` runs `-n auto --dist loadfile --no-loadscope-reorder`) each test
# module is one unit of work, so that a module's fixtures (a Ray instance, a trained model) are
# built once; the notebook chain and the pack test, which reuse one another's artifacts in one runs
# root, form one unit, and it starts first, as the longest. The units are drawn from the test's
# file name by the scheduler below, not by xdist_group marks: pytest 9 keeps a node's id where
# pytest-xdist 3.8's loadgroup no longer appends the group, so those marks are silently ignored.
CHAIN = ("test_notebook_", "test_pack.py")


def in_chain(path) -> bool:
    return Path(path).name.startswith(CHAIN)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: not in_chain(item.path))    # stable: the file order is kept


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class ChainAndModules(LoadFileScheduling):
        """--dist loadfile, with the notebook chain's files as one unit."""

        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "notebook-chain" if in_chain(module) else module

    return ChainAndModules(config, log)
