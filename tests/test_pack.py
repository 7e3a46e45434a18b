"""`mimo-lite pack` / `unpack`: an instructor's artifacts, unpacked in a fresh runs root, are
reused by every `ensure_*` the notebooks call, without training or rebuilding anything."""

import importlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from mimo_lite.artifacts import runs_dir
from mimo_lite.profile import load_profile
from mimo_lite.share import EXPECTED, MANIFEST, pack, status, unpack


def notebook_artifacts(profile, root) -> None:
    """What the notebooks ensure, in their order (01, 02, 04, 06, 07, 08)."""
    from mimo_lite.data.mixture import ensure_packed
    from mimo_lite.rl.runs import ensure_rl_model
    from mimo_lite.tasks.problems import ensure_problems
    from mimo_lite.train.pretrain import ensure_pretraining
    from mimo_lite.train.sft import ensure_sft_data, ensure_sft_model

    ensure_packed(profile, root)                    # corpus, tokenizer, packed
    ensure_pretraining(profile, root, progress=False)
    ensure_problems(profile, root)
    ensure_sft_data(profile, root)
    for variant in ("full", "lora", "light"):
        ensure_sft_model(profile, root, variant, progress=False)
    ensure_rl_model(profile, "sft", root, progress=False)
    ensure_rl_model(profile, "base", root, progress=False)


@pytest.fixture(scope="module")
def archive(smoke_runs, tmp_path_factory) -> Path:
    notebook_artifacts(load_profile("smoke"), smoke_runs)   # reused when the notebooks' tests built them
    return pack("smoke", smoke_runs, tmp_path_factory.mktemp("pack") / "smoke.tar.gz")


def snapshot(profile_dir: Path) -> dict:
    """Each artifact's marker with its text and modification time, and each run's metrics and
    checkpoints (the control run resumes from its last checkpoint: it rewrites them, unchanged)."""
    markers = {str(p.relative_to(profile_dir)): (p.read_text(), p.stat().st_mtime_ns)
               for pattern in ("BUILD.json", "manifest.json") for p in profile_dir.rglob(pattern)}
    runs = {str(p.relative_to(profile_dir)): p.read_text()
            for pattern in ("FINGERPRINT", "metrics.jsonl") for p in profile_dir.rglob(pattern)}
    steps = sorted(str(p.relative_to(profile_dir)) for p in profile_dir.rglob("step-*"))
    return {"markers": markers, "runs": runs, "checkpoints": steps}


def refuse(*_, **__):
    raise AssertionError("an unpacked artifact was built again")


def test_unpacked_artifacts_are_reused_without_training(archive, tmp_path, monkeypatch, capsys):
    root = tmp_path / "runs"
    brought = unpack(archive, root)
    assert set(EXPECTED) <= set(brought) and set(brought.values()) == {"current"}
    assert {name: state for name, state in status("smoke", root).items() if name in EXPECTED} == \
        dict.fromkeys(EXPECTED, "current")
    profile_dir = runs_dir("smoke", root)
    assert not (profile_dir / "grpo").exists() and not (profile_dir / "sft" / "full_run").exists()
    assert len(list((profile_dir / "pretrain_control" / "checkpoints").iterdir())) == 1

    for module, name in (("data.corpus", "build"), ("tokenizer", "train_tokenizer"),
                         ("train.pretrain", "pretrain"), ("tasks.problems", "grade_problem"),
                         ("data.sft", "raw_sft_pool"), ("train.sft", "train_sft"), ("rl.trainer", "train_grpo")):
        monkeypatch.setattr(importlib.import_module(f"mimo_lite.{module}"), name, refuse)
    before = snapshot(profile_dir)
    capsys.readouterr()
    notebook_artifacts(load_profile("smoke"), root)
    printed = capsys.readouterr().out
    assert "[mimo-lite]" not in printed and "building" not in printed
    assert snapshot(profile_dir) == before


def test_every_notebook_runs_on_an_unpacked_archive_without_building_anything(smoke_runs, tmp_path):
    """A class's second checkout: the instructor's archive (every notebook run, then packed) is
    unpacked into an empty runs root, every notebook runs there, and no artifact is built again:
    each artifact's marker is the archive's, and none is added."""
    from mimo_lite.cli import run_notebooks
    from mimo_lite.notebook import find_notebooks

    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    # the instructor's run: the notebooks' own tests ran them into smoke_runs already, so resuming
    # skips each one they ran (run alone, this test runs them all first)
    run_notebooks("smoke", runs_root=str(smoke_runs), notebooks_dir=notebooks, resume=True)
    archive = pack("smoke", smoke_runs, tmp_path / "class.tar.gz")
    root = tmp_path / "student"
    unpack(archive, root)
    profile_dir = runs_dir("smoke", root)
    before = snapshot(profile_dir)["markers"]
    # nothing is built here, so no notebook waits on another's artifacts: two processes run them,
    # split by the instructor's run times (the kit's run-time records and sandboxes allow it)
    times = json.loads((runs_dir("smoke", smoke_runs) / "notebooks" / "run_times.json").read_text())
    halves = ([], [])
    for name in sorted(times, key=lambda n: -times[n]["wall_s"]):
        min(halves, key=lambda half: sum(times[n]["wall_s"] for n in half)).append(name)
    logs, runs = [tmp_path / "first.log", tmp_path / "second.log"], []
    for half, log in zip(halves, logs):
        with log.open("w") as out:
            runs.append(subprocess.Popen(
                [sys.executable, "-m", "mimo_lite.cli", "notebooks", "--profile", "smoke", "--runs",
                 str(root), "--notebooks", str(notebooks), "--only", *(n.split("_")[0] for n in half)],
                stdout=out, stderr=subprocess.STDOUT))
    for run, log in zip(runs, logs):
        assert run.wait() == 0, log.read_text()[-3000:]
    executed = json.loads((profile_dir / "notebooks" / "run_times.json").read_text())
    assert sorted(executed) == [p.stem for p in find_notebooks(notebooks)]
    after = snapshot(profile_dir)["markers"]
    assert sorted(set(after) - set(before)) == [], "built on the student's checkout"
    assert [name for name in before if after[name] != before[name]] == [], "built again"


def rewritten(archive: Path, out: Path, change) -> Path:
    """A copy of `archive` whose members pass through `change(name, data) -> [(name, data)]`."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for member in src:
            data = src.extractfile(member).read() if member.isfile() else b""
            for name, body in change(member.name, data):
                info = tarfile.TarInfo(name)
                info.size = len(body)
                dst.addfile(info, io.BytesIO(body))
    return out


def test_a_tampered_file_fails_its_checksum_and_nothing_is_unpacked(archive, tmp_path):
    def flip(name, data):
        return [(name, data[:-1] + bytes([data[-1] ^ 1]) if name == "smoke/base/model.safetensors" else data)]

    bad = rewritten(archive, tmp_path / "bad.tar.gz", flip)
    with pytest.raises(ValueError, match=r"^base/model.safetensors in .* does not match the SHA-256") as err:
        unpack(bad, tmp_path / "runs")
    assert str(err.value).count(". ") == 0                 # one sentence
    assert [p.name for p in runs_dir("smoke", tmp_path / "runs").iterdir()] == []


def test_a_member_outside_the_runs_folder_is_refused(archive, tmp_path):
    def escape(name, data):
        return [(name, data)] + ([("smoke/../../evil.txt", b"x")] if name == MANIFEST else [])

    bad = rewritten(archive, tmp_path / "bad.tar.gz", escape)
    with pytest.raises(ValueError, match="points outside the runs folder"):
        unpack(bad, tmp_path / "runs")
    assert not (tmp_path / "evil.txt").exists()


def test_an_older_format_is_refused_naming_the_artifact(archive, tmp_path):
    def older(name, data):
        if name == MANIFEST:
            manifest = json.loads(data)
            manifest["format"]["tokenizer"] -= 1
            data = json.dumps(manifest).encode()
        return [(name, data)]

    with pytest.raises(ValueError, match=r"holds tokenizer/ in format tokenizer 1, .* pack it again"):
        unpack(rewritten(archive, tmp_path / "old.tar.gz", older), tmp_path / "runs")


def fingerprints(profile) -> dict:
    from mimo_lite.data.corpus import corpus_fingerprint
    from mimo_lite.rl.runs import rl_fingerprint
    from mimo_lite.tokenizer import tokenizer_fingerprint
    from mimo_lite.train.pretrain import base_fingerprint
    from mimo_lite.train.sft import sft_fingerprint

    return {"corpus": corpus_fingerprint(profile), "tokenizer": tokenizer_fingerprint(profile),
            "base": base_fingerprint(profile), "sft": sft_fingerprint(profile, "full"),
            "rl": rl_fingerprint(profile, "sft")}


def test_fingerprints_follow_settings_not_python_or_source(monkeypatch):
    profile = load_profile("smoke")
    before = fingerprints(profile)
    monkeypatch.setattr(sys, "version", "3.13.0 (main) [GCC 14.2.0]")
    monkeypatch.setattr(sys, "version_info", (3, 13, 0, "final", 0))
    source = Path(__file__).resolve().parents[1] / "mimo_lite"
    read_text, read_bytes = Path.read_text, Path.read_bytes
    edited = lambda p: p.suffix == ".py" and source in p.resolve().parents    # noqa: E731
    monkeypatch.setattr(Path, "read_text", lambda p, *a, **k: read_text(p, *a, **k) + ("\n# edited" if edited(p) else ""))
    monkeypatch.setattr(Path, "read_bytes", lambda p: read_bytes(p) + (b"\n# edited" if edited(p) else b""))
    assert fingerprints(profile) == before
    lr = fingerprints(load_profile("smoke", {"pretrain.peak_lr": "1e-3"}))
    assert {k: lr[k] == before[k] for k in before} == {"corpus": True, "tokenizer": True, "base": False,
                                                       "sft": False, "rl": False}
    data = fingerprints(load_profile("smoke", {"data.math_docs": str(profile.data.math_docs + 1)}))
    assert not any(data[k] == before[k] for k in before)


def test_the_corpus_reads_the_same_stdlib_files_on_every_interpreter(monkeypatch, tmp_path):
    import random
    import sysconfig

    from mimo_lite.data.sources import LISTS, stdlib_files

    real = sysconfig.get_paths()["stdlib"]
    here = [p.relative_to(real) for p in stdlib_files(30, random.Random(3))]
    if sys.version_info[:2] in ((3, 10), (3, 11), (3, 12), (3, 13)):
        assert len(here) == 30                             # every listed file is on this interpreter
    stdlib = tmp_path / "lib"                              # an interpreter with only some of them
    for name in LISTS["files"][::2]:
        (stdlib / name).parent.mkdir(parents=True, exist_ok=True)
        (stdlib / name).write_text("")
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(stdlib)})
    elsewhere = stdlib_files(30, random.Random(3))
    assert 0 < len(elsewhere) < 30 and all(p.relative_to(stdlib) in here for p in elsewhere)
