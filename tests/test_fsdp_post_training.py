"""SFT, GRPO and activation checkpointing under torchrun with FSDP2: 2 processes on gloo (CPU).

One launch loads a saved model sharded (each rank reading its shards of the safetensors file),
takes one SFT step on it with the rows of a batch split over the ranks, runs two GRPO steps
(rank 0 generates and scores, every rank updates on its share of the answers), and takes the
gradients of one batch with and without activation checkpointing. The tests compare it all with
one process.
"""

import json
import random
import sys
from pathlib import Path

import pytest
import torch

from mimo_lite.profile import RLSection, SFTSection
from mimo_lite.rl.trainer import train_grpo
from mimo_lite.train.run import read_metrics
from mimo_lite.train.sft import train_sft

sys.path.insert(0, str(Path(__file__).parent))
import pretrain_helpers  # noqa: E402
from test_grpo import FakeTokenizer, InlineExecutor, small_token_reward, tiny_model  # noqa: E402

# 5 packed rows a step, one row a micro-batch: rank 0 trains on 3 rows, rank 1 on 2 and one
# row with weight 0 (every rank runs as many micro-batches)
SFT = dict(seq_len=16, batch_tokens=80, micro_batch=1, lr=1e-3, log_every=1, checkpoint_every=50)
# 3 groups of 7 answers of at most 6 tokens, micro-batches of 12 tokens: rank 0 takes 11
# answers (6 micro-batches), rank 1 10 (5, then one with weight 0)
GRPO = dict(batch_prompts=3, group_size=7, updates_per_step=1, lr=3e-3, max_new_tokens=3,
            micro_batch_tokens=12, checkpoint_every=5, max_rounds=3)


def sft_examples(n=12):
    """Conversations of 5–8 random tokens whose second half is the (labelled) reply."""
    rng = random.Random(0)
    examples = []
    for _ in range(n):
        ids = [rng.randrange(2, pretrain_helpers.VOCAB) for _ in range(rng.randint(5, 8))]
        half = len(ids) // 2
        examples.append((ids, [-100] * half + ids[half:]))
    return examples


SCRIPT = """
import json, sys, torch
sys.path.insert(0, {here!r})
import pretrain_helpers
from pathlib import Path
from safetensors.torch import load_file
from test_fsdp_post_training import GRPO, SFT, sft_examples
from test_grpo import FakeTokenizer, InlineExecutor, small_token_reward, tiny_model
from mimo_lite.profile import RLSection, SFTSection
from mimo_lite.rl.trainer import train_grpo
from mimo_lite.train import parallel
from mimo_lite.train.sft import train_sft
torch.set_num_threads(1)


def main(rank, world):
    out = Path({out!r})

    # a trained model's checkpoint, loaded sharded: every rank holds its shards of the file's weights
    model = parallel.load_pretrained(out / "saved", "cpu")
    loaded = parallel.full_state_dict(model)
    if rank == 0:
        saved = load_file(out / "saved" / "model.safetensors")
        same = sorted(loaded) == sorted(saved) and all(torch.equal(loaded[k], saved[k]) for k in saved)
        (out / "loaded.json").write_text(json.dumps({{"same": same,
            "sharded": type(model.lm_head.weight).__name__}}))
    train_sft(model, sft_examples(), SFTSection(**SFT), out / "sft", pad_id=0, max_steps=1, progress=False)

    train_grpo(tiny_model(), FakeTokenizer(), [{{"id": f"p{{i}}", "prompt": str(i)}} for i in range(8)],
               RLSection(**GRPO), out / "grpo", steps=2, seed=0,
               executor=InlineExecutor(small_token_reward), progress=False)

    # one batch's gradients, without and with activation checkpointing
    model = parallel.build_sharded(pretrain_helpers.tiny_model_config(), 0, "cpu")
    rows = pretrain_helpers.streams(1, 0).take(8)[rank::world]
    grads = []
    for on in (False, True):
        model.model.activation_checkpointing = on
        (model(rows, labels=rows).loss / world).backward()
        grads.append({{n: p.grad.full_tensor() for n, p in model.named_parameters()}})
        model.zero_grad(set_to_none=True)
    if rank == 0:
        torch.save(grads, out / "checkpointing.pt")


with parallel.session() as (rank, world):
    main(rank, world)
"""


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp_post")
    pretrain_helpers.tiny_model(seed=3).save_pretrained(out / "saved")
    pretrain_helpers.torchrun_two(out / "run.py", SCRIPT.format(here=str(Path(__file__).parent), out=str(out)))
    return out


def relative(a, b):
    return abs(a - b) / abs(b)


def test_a_saved_model_loads_sharded_with_its_own_weights(two_processes):
    loaded = json.loads((two_processes / "loaded.json").read_text())
    assert loaded == {"same": True, "sharded": "DTensor"}


def test_sft_on_two_processes_takes_the_one_process_step(two_processes, tmp_path):
    two = read_metrics(two_processes / "sft" / "metrics.jsonl")
    from mimo_lite.model import MiMoForCausalLM
    model = MiMoForCausalLM.from_pretrained(two_processes / "saved")
    one = train_sft(model, sft_examples(), SFTSection(**SFT), tmp_path / "one", pad_id=0,
                    max_steps=1, progress=False)
    line = read_metrics(tmp_path / "one" / "metrics.jsonl")[0]
    assert one.step == 1 and two[0]["tokens"] == line["tokens"]
    print(f"SFT grad norm: 2 processes {two[0]['grad_norm']:.8f}, one {line['grad_norm']:.8f}, "
          f"relative difference {relative(two[0]['grad_norm'], line['grad_norm']):.1e}")
    assert two[0]["grad_norm"] == pytest.approx(line["grad_norm"], rel=1e-4)
    assert two[0]["main_loss"] == pytest.approx(line["main_loss"], rel=1e-5)


def test_a_grpo_update_on_two_processes_is_the_one_process_update(two_processes, tmp_path):
    two = read_metrics(two_processes / "grpo" / "metrics.jsonl")
    assert [m["step"] for m in two] == [1, 2]                 # rank 0 kept generating after the update
    assert (two_processes / "grpo" / "easy_pool.json").exists()
    assert list((two_processes / "grpo" / "checkpoints").glob("step-*"))
    one = train_grpo(tiny_model(), FakeTokenizer(), [{"id": f"p{i}", "prompt": str(i)} for i in range(8)],
                     RLSection(**GRPO), tmp_path / "one", steps=1, seed=0,
                     executor=InlineExecutor(small_token_reward), progress=False)[0]
    assert (two[0]["rollouts"], two[0]["reward"]) == (one["rollouts"], one["reward"])   # same samples
    print(f"GRPO grad norm: 2 processes {two[0]['grad_norm']:.8f}, one {one['grad_norm']:.8f}, "
          f"relative difference {relative(two[0]['grad_norm'], one['grad_norm']):.1e}")
    assert two[0]["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)
    assert two[0]["loss"] == pytest.approx(one["loss"], rel=1e-4, abs=1e-7)
    assert two[0]["entropy"] == pytest.approx(one["entropy"], rel=1e-5)


def test_activation_checkpointing_keeps_the_gradients_under_fsdp2(two_processes):
    off, on = torch.load(two_processes / "checkpointing.pt")
    assert list(off) == list(on)
    for name in off:
        torch.testing.assert_close(on[name], off[name], rtol=0, atol=1e-7, msg=name)


def test_activation_checkpointing_keeps_the_gradients_in_one_process():
    model = pretrain_helpers.tiny_model()
    rows = pretrain_helpers.streams(1, 0).take(4)
    grads = []
    for on in (False, True):
        model.model.activation_checkpointing = on
        model(rows, labels=rows).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        model.zero_grad(set_to_none=True)
    assert all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0])
    assert any(g.abs().sum() > 0 for n, g in grads[0].items() if "mtp_layers" in n)   # MTP included
