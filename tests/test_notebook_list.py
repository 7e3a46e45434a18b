"""The course's notebooks, found in order, and everything that names them: the notebook's own
`start(...)`, the recorded run times, the artifact owners and the solution notebooks."""

import json
import re
from pathlib import Path

from artifact_owners import OWNERS

from mimo_lite.notebook import find_notebooks
from mimo_lite.notebook import RUN_TIMES

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_a_split_notebooks_second_part_comes_right_after_its_first():
    stems = [p.stem for p in find_notebooks(NOTEBOOKS)]
    assert stems == ["00_overview", "01_data", "02_tokenizer", "03_architecture", "04_pretraining",
                     "05_inference", "05b_mtp_speculative", "06_sft", "07_rewards", "08_grpo",
                     "08b_grpo_ablations", "09_seamless_rollout", "10_evaluation", "11_scaling_up"]


def test_only_selects_one_notebook_by_number_or_name():
    assert [p.stem for p in find_notebooks(NOTEBOOKS, ["05"])] == ["05_inference"]
    assert [p.stem for p in find_notebooks(NOTEBOOKS, ["05b", "08"])] == ["05b_mtp_speculative", "08_grpo"]
    assert [p.stem for p in find_notebooks(NOTEBOOKS, ["08b_grpo_ablations"])] == ["08b_grpo_ablations"]


def test_each_notebook_records_under_its_own_name():
    for path in find_notebooks(NOTEBOOKS):
        source = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"])
        assert re.findall(r'start\("([^"]+)"', source) == [path.stem], path.name


def test_names_in_the_records_are_notebooks():
    stems = {p.stem for p in find_notebooks(NOTEBOOKS)}
    numbers = {s.split("_")[0] for s in stems}
    for profile, entry in json.loads(RUN_TIMES.read_text()).items():
        assert set(entry["notebooks"]) <= stems, profile
    assert set(OWNERS.values()) <= numbers
    for solution in (NOTEBOOKS / "solutions").glob("*_solutions.ipynb"):
        assert solution.stem.removesuffix("_solutions") in stems, solution.name


def test_every_model_a_notebook_loads_goes_to_the_profiles_device():
    """A model loaded in a notebook stays on the CPU unless moved: at `gpu` notebook 09 generated
    its Table 2 workload with the 96M model on the CPU (unfinished after 18 minutes; the benchmark,
    which moves it, measures a code-only variant in 137 s). Every `MiMoForCausalLM.from_pretrained(...)`
    is moved."""
    for path in find_notebooks(NOTEBOOKS):
        for cell in json.loads(path.read_text())["cells"]:
            for line in "".join(cell["source"]).splitlines():
                if "MiMoForCausalLM.from_pretrained(" in line:
                    assert ".to(" in line, f"{path.name}: {line.strip()}"
