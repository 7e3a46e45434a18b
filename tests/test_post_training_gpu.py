"""SFT on CUDA: skipped on machines without a GPU (GRPO on CUDA: test_grpo.py)."""

import random

import pytest
import torch

from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.profile import SFTSection
from mimo_lite.train.run import read_metrics
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
