"""The kit works from an installed (non-editable) copy: the wheel carries its package data."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_templates_and_generates_problems(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, cwd=tmp_path)
    [wheel] = (tmp_path / "dist").glob("mimo_lite-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("mimo_lite/tasks/templates/math.yaml", "mimo_lite/tasks/templates/code.yaml",
                 "mimo_lite/profiles/toy.yaml"):
        assert name in names, f"{name} is missing from {wheel.name}"

    site = tmp_path / "site"                       # installing a wheel is unpacking it
    zipfile.ZipFile(wheel).extractall(site)
    script = (
        "import mimo_lite, pathlib\n"
        f"assert pathlib.Path(mimo_lite.__file__).is_relative_to({str(site)!r}), mimo_lite.__file__\n"
        "from mimo_lite.tasks.problems import code_problems, math_problems\n"
        "m = math_problems(3, seed=0); c = code_problems(2, [1, 0], 4, seed=0)\n"
        "print(len(m), len(c), sorted({p['tier'] for p in m}))\n")
    elsewhere = tmp_path / "elsewhere"             # not the checkout: its sources are not on the path
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", script], cwd=elsewhere, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == ["12", "2", "[1,", "2,", "3,", "4]"]
