"""The same loop under torchrun with FSDP2: 2 processes on the gloo backend (CPU)."""

import sys
from pathlib import Path

import pytest
import torch

from mimo_lite.train.run import read_metrics

sys.path.insert(0, str(Path(__file__).parent))
import pretrain_helpers  # noqa: E402

SCRIPT = """
import sys, torch
sys.path.insert(0, {here!r})
import pretrain_helpers
from mimo_lite.train import parallel
from mimo_lite.train.loop import train
torch.set_num_threads(1)


def main():
    torch.manual_seed(0)
    model = parallel.shard(pretrain_helpers.tiny_model())
    train(model, pretrain_helpers.tiny_config(total_tokens=6000), pretrain_helpers.streams,
          pretrain_helpers.SEQ_LENS, {out!r}, progress=False)


with parallel.session():
    main()
"""


def test_fsdp2_on_two_processes_trains_like_one(tmp_path):
    pretrain_helpers.torchrun_two(tmp_path / "run.py", SCRIPT.format(here=str(Path(__file__).parent),
                                                                     out=str(tmp_path / "two")))
    metrics = read_metrics(tmp_path / "two" / "metrics.jsonl")
    assert len(metrics) > 10 and metrics[-1]["loss"] < metrics[0]["loss"] - 1
    assert all(m["batch_sequences"] % 2 == 0 for m in metrics)     # each rank gets as many rows
    assert list((tmp_path / "two" / "checkpoints").glob("step-*"))

    # The first step's gradient (averaged over the shards by FSDP) equals one process's
    # gradient on the whole batch: same global norm.
    torch.manual_seed(0)
    model = pretrain_helpers.tiny_model()
    batch = pretrain_helpers.streams(1, 0).take(metrics[0]["batch_sequences"])
    model(batch, labels=batch, mtp_loss_weight=metrics[0]["mtp_loss_weight"]).loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
    assert metrics[0]["grad_norm"] == pytest.approx(norm, rel=1e-4)


ABORTS = """
import os, torch, torch.distributed as dist
from pathlib import Path
from mimo_lite.train import parallel

marker = Path({marker!r})
with parallel.session() as (rank, world):
    if rank == 1 and not marker.exists():
        if {once!r}:
            marker.write_text("aborted once")
        os.abort()
    total = torch.ones(1)
    dist.all_reduce(total)
    Path({out!r}, f"sum-{{rank}}").write_text(str(total.item()))
"""


def test_a_rank_killed_by_a_signal_relaunches_once_and_twice_fails(tmp_path):
    once = tmp_path / "once"
    once.mkdir()
    (once / "input").write_text("kept")
    with pytest.warns(UserWarning, match="launched again once") as caught:
        pretrain_helpers.torchrun_two(once / "run.py", ABORTS.format(
            marker=str(tmp_path / "marker"), once=True, out=str(once)))
    assert "Fatal Python error: Aborted" in str(caught[0].message)    # rank 1's own stack
    assert (once / "sum-0").read_text() == "2.0" and (once / "input").read_text() == "kept"
    assert (once / "run.first.log").exists() and "run.first.log" in str(caught[0].message)

    twice = tmp_path / "twice"
    twice.mkdir()
    with pytest.warns(UserWarning), pytest.raises(AssertionError, match="SIGABRT"):
        pretrain_helpers.torchrun_two(twice / "run.py", ABORTS.format(
            marker=str(tmp_path / "never"), once=False, out=str(twice)))
