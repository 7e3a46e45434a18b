"""Sharded checkpoints (DCP), their Hugging Face export, and meta-device initialisation.

One torchrun launch (2 processes on the gloo backend, CPU) trains the toy stream 3 steps from a
meta-device init, with a sharded checkpoint at step 2; resumes a copy of that run from step 2;
builds a model on the meta device again and gathers its weights; saves and restores each
rank's RNG; and takes one step in bfloat16. The tests then compare all of it with one process.
"""

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

from mimo_lite.train import checkpoint, parallel
from mimo_lite.train.loop import train
from mimo_lite.train.run import read_metrics

sys.path.insert(0, str(Path(__file__).parent))
import pretrain_helpers  # noqa: E402

STEPS = 3
# A full batch of 16 sequences from the second step on (the batch warm-up starts at 2): every
# step has as many sequences in one process as in two, so the two runs see the same data.
CONFIG = dict(total_tokens=1000, min_warmup_tokens=0, checkpoint_every=2)

SCRIPT = """
import json, shutil, sys, torch
sys.path.insert(0, {here!r})
import pretrain_helpers
from pathlib import Path
from mimo_lite.train import checkpoint, parallel
from mimo_lite.train.loop import train
from mimo_lite.train.run import Run
torch.set_num_threads(1)


def main(rank, world):
    out = Path({out!r})
    cfg = pretrain_helpers.tiny_config(**{config!r})

    def run(folder, asynchronous=False):
        model = parallel.build(pretrain_helpers.tiny_model_config(), 0, "cpu")
        train(model, cfg, pretrain_helpers.streams, pretrain_helpers.SEQ_LENS, out / folder,
              max_steps={steps}, progress=False, async_checkpoints=asynchronous)

    run("straight")                                   # steps 1-3, a sharded checkpoint at step 2
    if rank == 0:
        shutil.copytree(out / "straight", out / "resumed")
    parallel.barrier()
    run("resumed")                                    # resumes from step 2, trains step 3
    run("async", True)                                # the same, its checkpoints written in the background
    if rank == 0:
        shutil.copytree(out / "async", out / "async_resumed")
    parallel.barrier()
    run("async_resumed", True)

    model = parallel.build_sharded(pretrain_helpers.tiny_model_config(), 0, "cpu")
    weights = parallel.full_state_dict(model)
    if rank == 0:
        torch.save(weights, out / "meta_init.pt")

    # each rank's RNG: seeded apart, saved, drawn from, scrambled, restored, drawn from again
    optimizer = torch.optim.AdamW(model.parameters())
    torch.manual_seed(100 + rank)
    checkpoint.save(out / "rng", 1, model, optimizer, {{}})
    before = torch.rand(3).tolist()
    torch.manual_seed(12345)
    checkpoint.load(out / "rng" / "step-00000001", model, optimizer)
    (out / f"rng-{{rank}}.json").write_text(json.dumps([before, torch.rand(3).tolist()]))

    # bfloat16: the units gather their weights in bf16 (MixedPrecisionPolicy); the sharded master
    # weights and their gradients stay fp32
    model = parallel.build(pretrain_helpers.tiny_model_config(), 0, "cpu", torch.bfloat16)
    bf16 = Run(out / "bf16", model, lr=1e-3, dtype=torch.bfloat16, progress=False)
    gathered = set()
    model.model.layers[0].mlp.down_proj.register_forward_hook(
        lambda m, i, o: gathered.add(str(m.weight.dtype)))
    rows = pretrain_helpers.streams(1, 0).take(4)[rank::world]
    with bf16.autocast:
        bf16.forward(rows, labels=rows).loss.backward()
    dtypes = {{"gathered": sorted(gathered),
              "sharded": sorted({{str(p.dtype) for p in model.parameters()}}),
              "gradients": sorted({{str(p.grad.dtype) for p in model.parameters()}})}}
    bf16.optimizer_step(1.0)
    if rank == 0:
        (out / "bf16.json").write_text(json.dumps(dtypes))


with parallel.session() as (rank, world):
    main(rank, world)
"""


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("dcp")
    pretrain_helpers.torchrun_two(out / "run.py", SCRIPT.format(here=str(Path(__file__).parent), out=str(out),
                                                                config=CONFIG, steps=STEPS))
    return out


def one_process(folder, max_steps=STEPS):
    """The same run in this process, from the same meta-device init; returns the model."""
    torch.set_num_threads(1)
    model = parallel.build_sharded(pretrain_helpers.tiny_model_config(), 0, "cpu")
    train(model, pretrain_helpers.tiny_config(**CONFIG), pretrain_helpers.streams,
          pretrain_helpers.SEQ_LENS, folder, max_steps=max_steps, progress=False)
    return model


def test_a_sharded_checkpoint_resumes_at_two_processes_and_at_one(two_processes, tmp_path):
    straight = read_metrics(two_processes / "straight" / "metrics.jsonl")
    assert [m["step"] for m in straight] == [1, 2, 3]
    saved = checkpoint.checkpoints(two_processes / "straight" / "checkpoints")
    assert [p.name for p in saved] == ["step-00000002"]
    files = {p.name for p in saved[0].iterdir()}
    assert {".metadata", "__0_0.distcp", "__1_0.distcp", "rng-0.pt", "rng-1.pt",
            "trainer_state.json", "config.json", checkpoint.MANIFEST} <= files
    manifest = json.loads((saved[0] / checkpoint.MANIFEST).read_text())
    assert manifest["world_size"] == 2 and set(manifest["files"]) == files - {checkpoint.MANIFEST}

    resumed = read_metrics(two_processes / "resumed" / "metrics.jsonl")    # bit-exact
    assert [(m["step"], m["loss"], m["grad_norm"]) for m in resumed] == \
           [(m["step"], m["loss"], m["grad_norm"]) for m in straight]

    shutil.copytree(two_processes / "straight", tmp_path / "one")   # resumed by one process
    one_process(tmp_path / "one")
    one = read_metrics(tmp_path / "one" / "metrics.jsonl")
    assert [m["step"] for m in one] == [1, 2, 3] and one[:2] == straight[:2]
    assert one[2]["batch_sequences"] == straight[2]["batch_sequences"]
    assert one[2]["loss"] == pytest.approx(straight[2]["loss"], abs=1e-6)
    assert one[2]["grad_norm"] == pytest.approx(straight[2]["grad_norm"], rel=1e-5)


def test_an_asynchronous_checkpoint_holds_what_a_synchronous_one_does(two_processes):
    def shards(run):
        [step] = checkpoint.checkpoints(two_processes / run / "checkpoints")
        files = json.loads((step / checkpoint.MANIFEST).read_text())["files"]
        return step.name, {name: f["sha256"] for name, f in files.items() if name.endswith(".distcp")}

    assert shards("async") == shards("straight")        # the same bytes, written in the background
    for run in ("async", "async_resumed"):              # and a run resumed from it is bit-exact
        assert [(m["step"], m["loss"], m["grad_norm"]) for m in read_metrics(two_processes / run / "metrics.jsonl")] \
            == [(m["step"], m["loss"], m["grad_norm"]) for m in read_metrics(two_processes / "straight" / "metrics.jsonl")]
    assert not list((two_processes / "async" / "checkpoints").glob(".tmp-*"))   # sealed at the end


def test_an_unsealed_or_corrupted_sharded_checkpoint_is_skipped(two_processes, tmp_path):
    folder = tmp_path / "checkpoints"
    good = folder / "step-00000002"
    shutil.copytree(two_processes / "straight" / "checkpoints" / good.name, good)
    unsealed = folder / "step-00000003"              # every shard written, no manifest yet
    shutil.copytree(good, unsealed)
    (unsealed / checkpoint.MANIFEST).unlink()
    with pytest.warns(UserWarning, match="no readable MANIFEST"):
        assert checkpoint.latest_good(folder) == good
    corrupted = folder / "step-00000004"
    shutil.copytree(good, corrupted)
    with open(corrupted / "__1_0.distcp", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.warns(UserWarning, match="corrupted __1_0.distcp"):
        assert checkpoint.latest_good(folder) == good


def test_each_rank_restores_its_own_rng(two_processes):
    draws = [json.loads((two_processes / f"rng-{r}.json").read_text()) for r in (0, 1)]
    assert all(before == after for before, after in draws)
    assert draws[0][0] != draws[1][0]


def test_the_hf_export_of_a_sharded_checkpoint_is_the_one_process_model(two_processes, tmp_path,
                                                                       monkeypatch):
    from transformers import AutoModelForCausalLM

    step2 = two_processes / "straight" / "checkpoints" / "step-00000002"
    monkeypatch.setattr(checkpoint, "SHARD_BYTES", 100_000)               # several files + index
    checkpoint.export_hf(step2, tmp_path / "hf")
    assert len(list((tmp_path / "hf").glob("model-*-of-*.safetensors"))) > 1
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == "mimo" and config["architectures"] == ["MiMoForCausalLM"]
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").state_dict()

    # the model one process holds when it resumes from that checkpoint: the very same weights
    held = pretrain_helpers.tiny_model(seed=1)
    checkpoint.load(step2, held, torch.optim.AdamW(held.parameters()))
    assert list(exported) == list(held.state_dict())
    assert all(torch.equal(exported[k], v) for k, v in held.state_dict().items())

    # the same two steps trained in one process: equal up to rounding, which AdamW enlarges
    # where a gradient is near zero (it divides each gradient by its own running size)
    trained = one_process(tmp_path / "single", max_steps=2).state_dict()
    for key, value in trained.items():
        torch.testing.assert_close(exported[key], value, rtol=0, atol=1e-4, msg=key)

    with pytest.raises(ValueError, match="not a sharded"):
        checkpoint.export_hf(checkpoint.checkpoints(tmp_path / "single" / "checkpoints")[0],
                             tmp_path / "nope")


def test_meta_device_init_is_the_same_at_one_and_two_processes(two_processes):
    two = torch.load(two_processes / "meta_init.pt")
    one = parallel.build_sharded(pretrain_helpers.tiny_model_config(), 0, "cpu").state_dict()
    assert list(two) == list(one)
    assert all(torch.equal(two[k], one[k]) for k in one)
    assert torch.equal(one["model.norm.weight"], torch.ones_like(one["model.norm.weight"]))
    assert torch.equal(one["model.layers.0.self_attn.q_proj.bias"],
                       torch.zeros_like(one["model.layers.0.self_attn.q_proj.bias"]))
    std = one["model.layers.0.mlp.up_proj.weight"].std().item()
    assert 0.015 < std < 0.025                     # the config's initializer_range, 0.02


def test_bfloat16_gathers_bf16_weights_and_keeps_fp32_master_weights(two_processes):
    dtypes = json.loads((two_processes / "bf16.json").read_text())
    assert dtypes == {"gathered": ["torch.bfloat16"], "sharded": ["torch.float32"],
                      "gradients": ["torch.float32"]}
