"""The pre-training loop: schedules, exact resume after SIGKILL, corrupted checkpoints."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mimo_lite.train import checkpoint
from mimo_lite.train.run import read_metrics
from mimo_lite.train.schedules import Schedule

sys.path.insert(0, str(Path(__file__).parent))
import pretrain_helpers  # noqa: E402


@pytest.mark.parametrize("total", [10_000, 3_000_000, 25_000_000_000_000])
def test_schedule_has_the_papers_shape_at_any_budget(total):
    s = Schedule(total, 1.07e-4)
    ts = [int(total * i / 2000) for i in range(2000)]
    lrs = [s.lr(t) for t in ts]
    peak = max(lrs)
    assert peak == pytest.approx(1.07e-4)
    first_peak = next(i for i, v in enumerate(lrs) if v == peak)
    assert all(a <= b for a, b in zip(lrs[:first_peak], lrs[1:first_peak + 1]))       # warm-up rises
    assert all(a >= b - 1e-15 for a, b in zip(lrs[first_peak:], lrs[first_peak + 1:]))  # never rises again
    end1, end2, _ = s.stage_ends
    assert s.lr(end1) == pytest.approx(3e-5, rel=1e-3)                                # stage 1 decays to 3e-5
    assert s.lr(end2 - 1) == pytest.approx(3e-5) and s.lr((end1 + end2) // 2) == pytest.approx(3e-5)
    assert s.lr(total - 1) == pytest.approx(1e-5, rel=2e-2)                           # stage 3 ends at 1e-5
    assert s.mtp_loss_weight(0) == 0.3 and s.mtp_loss_weight(total - 1) == 0.1
    switch = next(t for t in ts if s.mtp_loss_weight(t) == 0.1)
    assert 0.42 < switch / total < 0.44                                               # 10.3T of 23.8T
    assert s.batch_fraction(0) < 1 and s.batch_fraction(total // 10) == 1.0
    assert [s.stage(t) for t in (0, end1, end2)] == [1, 2, 3]


def test_loss_falls_and_stages_run_in_order(tmp_path):
    state, _ = pretrain_helpers.run(tmp_path)
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(1, state.step + 1))
    assert metrics[-1]["loss"] < 0.5 * metrics[0]["loss"]
    assert sorted({m["stage"] for m in metrics}) == [1, 2, 3]
    assert {m["seq_len"] for m in metrics if m["stage"] == 3} == {32}
    assert set(state.heldout) == {"stage1", "stage2", "stage3"}
    assert state.heldout["stage3"]["counting"] < state.heldout["stage1"]["counting"] + 0.5
    assert metrics[-1]["mtp_top1"] > 0.5


def test_killed_run_resumes_bitwise(tmp_path):
    torch.set_num_threads(1)
    reference, _ = pretrain_helpers.run(tmp_path / "straight")
    expected = read_metrics(tmp_path / "straight" / "metrics.jsonl")

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, pretrain_helpers.__file__, str(out)],
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    deadline = time.time() + 120
    while time.time() < deadline and len(checkpoint.checkpoints(out / "checkpoints")) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(read_metrics(out / "metrics.jsonl")) < len(expected), "the run finished before the kill"

    resumed, _ = pretrain_helpers.run(out)
    got = read_metrics(out / "metrics.jsonl")
    assert [(m["step"], m["loss"], m["mtp_loss"], m["grad_norm"]) for m in got] == \
           [(m["step"], m["loss"], m["mtp_loss"], m["grad_norm"]) for m in expected]
    assert resumed.heldout == reference.heldout


def test_a_run_stopped_at_a_stage_boundary_resumes_as_if_it_never_stopped(tmp_path):
    """The control branches at stage 1's end while the main run goes on (`ensure_pretraining`):
    the main run stops there and resumes later, with the same losses as a straight run."""
    from mimo_lite.train.loop import train

    torch.set_num_threads(1)
    reference, _ = pretrain_helpers.run(tmp_path / "straight")
    expected = read_metrics(tmp_path / "straight" / "metrics.jsonl")

    torch.manual_seed(0)
    heldout = {"counting": pretrain_helpers.streams(1, 10_000).take(8)}
    stopped = train(pretrain_helpers.tiny_model(), pretrain_helpers.tiny_config(), pretrain_helpers.streams,
                    pretrain_helpers.SEQ_LENS, tmp_path / "split", heldout=heldout, progress=False, stop_at_stage=2)
    assert stopped.stage == 2 and set(stopped.heldout) == {"stage1"}
    assert {m["stage"] for m in read_metrics(tmp_path / "split" / "metrics.jsonl")} == {1}
    assert len(checkpoint.checkpoints(tmp_path / "split" / "stage_ends")) == 1

    resumed, _ = pretrain_helpers.run(tmp_path / "split")
    got = read_metrics(tmp_path / "split" / "metrics.jsonl")
    assert [(m["step"], m["loss"], m["mtp_loss"], m["grad_norm"]) for m in got] == \
           [(m["step"], m["loss"], m["mtp_loss"], m["grad_norm"]) for m in expected]
    assert resumed.heldout == reference.heldout


def test_corrupted_checkpoint_is_rejected_and_the_previous_one_used(tmp_path):
    pretrain_helpers.run(tmp_path, max_steps=10)
    good, newest = checkpoint.checkpoints(tmp_path / "checkpoints")[1], \
        checkpoint.checkpoints(tmp_path / "checkpoints")[0]
    with open(newest / "model.safetensors", "r+b") as f:     # flip bytes in the newest
        f.seek(100)
        f.write(b"\x00\x01\x02\x03")
    with pytest.warns(UserWarning, match="corrupted model.safetensors.*previous checkpoint"):
        assert checkpoint.latest_good(tmp_path / "checkpoints") == good
    (tmp_path / "checkpoints" / ".tmp-step-00000099-1").mkdir()      # a write that was killed
    (tmp_path / "checkpoints" / "step-00000099").mkdir()             # a folder without a manifest
    with pytest.warns(UserWarning, match="no readable MANIFEST"):
        assert checkpoint.latest_good(tmp_path / "checkpoints") == good
    with pytest.raises(ValueError, match="corrupted model.safetensors"):
        checkpoint.load(newest, pretrain_helpers.tiny_model(), torch.optim.AdamW(
            pretrain_helpers.tiny_model().parameters()))


def test_the_control_reads_its_flat_mixture_after_stage_1_at_the_short_context(tmp_path):
    from mimo_lite.data.mixture import CONTROL
    from mimo_lite.train.loop import train

    asked = []

    def streams(stage, position):
        asked.append(stage)
        return pretrain_helpers.CountingStream(7 if stage == CONTROL else stage, position,
                                               seq_lens[stage])

    seq_lens = {**pretrain_helpers.SEQ_LENS, CONTROL: 16}
    torch.manual_seed(0)
    model = pretrain_helpers.tiny_model()
    train(model, pretrain_helpers.tiny_config(), streams, seq_lens, tmp_path, curriculum=False,
          progress=False)
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert asked[0] == 1 and set(asked[1:]) == {CONTROL}
    assert sorted({m["stage"] for m in metrics}) == [1, 2, 3]
    assert {m["seq_len"] for m in metrics} == {16}                     # never stage 3's 32
    assert model.config.rope_parameters["rope_theta"] == 10_000.0


def test_the_compiled_forward_gets_the_same_arguments_at_every_step(tmp_path, monkeypatch):
    """λ of L_main + λ·L_mtp changes once in the run (0.3 → 0.1); a Python value that changes
    is guarded by torch.compile, so passing λ into the compiled forward compiled the model again at
    the switch (two minutes on a GPU). The loop applies λ itself; the forward's non-tensor
    arguments stay fixed, and the logged loss is main + λ·mtp with the schedule's λ."""
    from mimo_lite.train.loop import train

    seen = []

    def recording_compile(model, **_):
        def forward(*args, **kwargs):
            seen.append({k: v for k, v in kwargs.items() if not isinstance(v, torch.Tensor)})
            return model(*args, **kwargs)
        return forward

    monkeypatch.setattr(torch, "compile", recording_compile)
    torch.manual_seed(0)
    cfg = pretrain_helpers.tiny_config(total_tokens=8_000)
    train(pretrain_helpers.tiny_model(), cfg, pretrain_helpers.streams, pretrain_helpers.SEQ_LENS,
          tmp_path, progress=False, compile=True)
    assert len(seen) > 10 and all(kwargs == seen[0] for kwargs in seen)
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert {m["mtp_loss_weight"] for m in metrics} == {0.3, 0.1}
    for m in metrics:
        assert m["loss"] == pytest.approx(m["main_loss"] + m["mtp_loss_weight"] * m["mtp_loss"], rel=1e-5)


def test_stage_1_of_the_side_by_side_runs_holds_the_base_models_lock(tmp_path, monkeypatch):
    """`ensure_pretraining` with 2 processes trains stage 1 in the base model's run folder: it must
    hold the lock `ensure_base_model` takes (another process's pre-training of the profile waits),
    and let go of it before its worker processes start (one of them takes it again)."""
    import fcntl
    import importlib

    from mimo_lite.profile import load_profile

    pretrain = importlib.import_module("mimo_lite.train.pretrain")   # the module, not its function

    lock = tmp_path / "smoke" / ".base.lock"
    lock.parent.mkdir(parents=True)

    def locked_elsewhere() -> bool:          # flock conflicts between two opens, even in one process
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False

    seen = {}
    monkeypatch.setattr(pretrain, "_setup", lambda profile, runs_root: (None,) * 5 + ("digest",))
    monkeypatch.setattr(pretrain, "current", lambda folder, digest: False)
    monkeypatch.setattr(pretrain, "_run", lambda *a, **k: seen.setdefault("stage 1", locked_elsewhere()))
    monkeypatch.setattr(pretrain, "build_all", lambda jobs, processes: seen.setdefault("workers", locked_elsewhere()))
    monkeypatch.setattr(pretrain, "ensure_base_model", lambda *a: ("model", "tokenizer"))
    monkeypatch.setattr(pretrain, "run_control", lambda *a: ("control", "state"))
    profile = load_profile("smoke", {"processes": 2})
    assert pretrain.ensure_pretraining(profile, tmp_path, progress=False) == ("model", "tokenizer", "control", "state")
    assert seen == {"stage 1": True, "workers": False}
