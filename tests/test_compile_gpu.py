"""The trainers' compiled path on CUDA, as the gpu profile runs it (bf16, `compile: true`):
pre-training through its batch warm-up and stage change, one SFT step, one GRPO update.
Skipped on machines without a GPU."""

import math
import sys
from pathlib import Path

import pytest
import torch

from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.profile import PretrainSection, RLSection, SFTSection, load_profile
from mimo_lite.rl.trainer import train_grpo
from mimo_lite.train.loop import train
from mimo_lite.train.run import read_metrics
from mimo_lite.train.sft import train_sft

sys.path.insert(0, str(Path(__file__).parent))
from test_grpo import FakeTokenizer, InlineExecutor, small_token_reward  # noqa: E402
from test_post_training_gpu import examples  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

GPU = load_profile("gpu")


class RandomTokens:
    """Uniform random token ids (the loop's TokenStream); a stage's sequences are seq_lens[stage] long."""

    def __init__(self, seq_lens: dict, stage, position: int):
        self.seq_len, self.position = seq_lens[stage], position

    def take(self, n: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.position)
        self.position += n
        return torch.randint(0, preset("gpu").vocab_size, (n, self.seq_len), generator=g)


def test_compiled_pretraining_runs_the_batch_warm_up_and_the_stage_change(tmp_path):
    """The gpu model at the gpu profile's contexts (1024, then 4096 in stage 3). The batch warm-up
    starts at one sequence per step, the shape that stopped inductor's mix-order reduction
    (`run.compile_options`), then takes 2, 4 and 8 (micro-batches of 2), which makes the batch
    size symbolic; stage 3 brings the longer context and the larger RoPE base at two sequences a
    micro-batch, so that its graph has a symbolic batch size *and* length, the graph that stopped
    inductor's tiling analysis in the gpu pre-training run. (Ending stage 3 at one sequence, as
    this test once did, does not reach it: torch.compile specialises a size of 1.)"""
    assert GPU.compile and GPU.torch_dtype == torch.bfloat16
    seq_lens = {s: GPU.data.stage(s).seq_len for s in (1, 2, 3)}
    assert seq_lens == {1: 1024, 2: 1024, 3: 4096}
    cfg = PretrainSection(total_tokens=32 * 1024, peak_lr=1e-3, batch_tokens=8 * 1024, micro_batch=2,
                          stage_fractions=[0.5, 0.2, 0.3], min_warmup_tokens=8 * 1024, log_every=1,
                          checkpoint_every=1000, heldout_sequences=0)
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("gpu")).cuda()
    state = train(model, cfg, lambda stage, position: RandomTokens(seq_lens, stage, position),
                  seq_lens, tmp_path, device="cuda", dtype=GPU.torch_dtype, compile=GPU.compile,
                  progress=False)
    metrics = read_metrics(tmp_path / "metrics.jsonl")
    assert state.tokens == cfg.total_tokens
    assert [m["batch_sequences"] for m in metrics] == [1, 1, 2, 4, 8, 8, 2]
    assert [(m["stage"], m["seq_len"]) for m in metrics][-2:] == [(2, 1024), (3, 4096)]
    assert all(math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"]) for m in metrics)
    assert all(m["mtp_loss"] > 0 for m in metrics)
    assert metrics[0]["loss"] == pytest.approx(math.log(preset("gpu").vocab_size) * (1 + 0.3), rel=0.1)


def test_compiled_sft_step_trains_packed_rows(tmp_path):
    """One step over three packed rows: micro-batches of two rows and of one, with block masks."""
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("toy", vocab_size=64)).cuda()
    before = model.lm_head.weight.detach().clone()
    cfg = SFTSection(seq_len=256, batch_tokens=3 * 256, micro_batch=2, lr=1e-4, total_tokens=10**9,
                     log_every=1, checkpoint_every=100)
    state = train_sft(model, examples(200), cfg, tmp_path, pad_id=0, max_steps=1, progress=False,
                      dtype=GPU.torch_dtype, compile=GPU.compile)
    [line] = read_metrics(tmp_path / "metrics.jsonl")
    assert state.step == 1 and state.row == 3
    assert math.isfinite(line["main_loss"]) and line["mtp_loss"] > 0
    assert not torch.equal(before, model.lm_head.weight)


def test_compiled_grpo_update_moves_the_main_stack_only(tmp_path):
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("toy", vocab_size=32)).cuda()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    problems = [{"id": f"p{i}", "prompt": str(i)} for i in range(8)]
    cfg = RLSection(batch_prompts=2, group_size=8, updates_per_step=1, lr=1e-5, max_new_tokens=4,
                    checkpoint_every=100, max_rounds=4)
    [line] = train_grpo(model, FakeTokenizer(), problems, cfg, tmp_path, steps=1, seed=0,
                        executor=InlineExecutor(small_token_reward), progress=False,
                        dtype=GPU.torch_dtype, compile=GPU.compile)
    assert line["updates"] == 1 and line["valid_groups"] >= 1
    assert math.isfinite(line["loss"])
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if "mtp_layers" in k)
    assert not torch.equal(before["model.layers.0.self_attn.q_proj.weight"],
                           after["model.layers.0.self_attn.q_proj.weight"])
