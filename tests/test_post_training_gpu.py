"""SFT and GRPO on CUDA: skipped on machines without a GPU."""

import random

import pytest
import torch

from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.profile import RLSection, SFTSection
from mimo_lite.rl.trainer import train_grpo
from mimo_lite.train.loop import read_metrics
from mimo_lite.train.sft import IGNORE, pack, train_sft

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def examples(n, vocab=64, seed=0):
    """Synthetic conversations: a 'prompt' of random ids, then a reply that counts up from its last id."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt = [rng.randrange(vocab) for _ in range(rng.randint(4, 12))]
        reply = [(prompt[-1] + i) % vocab for i in range(1, rng.randint(4, 16))]
        out.append((prompt + reply, [IGNORE] * len(prompt) + reply))
    return out


def test_packed_sft_loss_on_cuda_equals_cpu_and_training_runs(tmp_path):
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("smoke", vocab_size=64))
    packed = pack(examples(12), 128, pad_id=0)
    cpu = model(**packed.rows(slice(None)))
    gpu_model = model.cuda()
    gpu = gpu_model(**{k: v.cuda() for k, v in packed.rows(slice(None)).items()})
    assert gpu.main_loss.item() == pytest.approx(cpu.main_loss.item(), abs=1e-4)
    assert gpu.mtp_loss.item() == pytest.approx(cpu.mtp_loss.item(), abs=1e-4)

    cfg = SFTSection(seq_len=128, batch_tokens=512, micro_batch=4, lr=3e-3, total_tokens=10**9,
                     log_every=1, checkpoint_every=4)
    train_sft(gpu_model, examples(64), cfg, tmp_path, pad_id=0, max_steps=8, progress=False)
    losses = [m["main_loss"] for m in read_metrics(tmp_path / "metrics.jsonl")]
    assert len(losses) == 8 and losses[-1] < losses[0]


def test_grpo_trains_on_cuda_and_keeps_the_mtp_layers(tmp_path):
    from test_grpo import FakeTokenizer, InlineExecutor, small_token_reward

    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("smoke", vocab_size=32)).cuda()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    problems = [{"id": f"p{i}", "prompt": str(i)} for i in range(8)]
    cfg = RLSection(batch_prompts=4, group_size=8, updates_per_step=2, lr=3e-3, max_new_tokens=3,
                    temperature=1.0, checkpoint_every=5, max_rounds=3)
    lines = train_grpo(model, FakeTokenizer(), problems, cfg, tmp_path / "run", steps=14, seed=0,
                       executor=InlineExecutor(small_token_reward), progress=False)
    rewards = [m["reward"] for m in lines]
    assert sum(rewards[-3:]) / 3 > rewards[0] + 0.3, rewards
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if "mtp_layers" in k)
    assert next(model.parameters()).device.type == "cuda"
