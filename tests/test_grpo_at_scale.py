"""GRPO's update at 7B's shape, checked on a tiny model: log-probs through the lm_head in chunks
(same values and gradients as the full log-softmax, no (B, T, V) tensor kept for the backward),
token-budget micro-batches (the same step as one big batch), and a reward pool that spawns."""

import copy
import random
from pathlib import Path

import pytest
import torch

from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.profile import RLSection, load_profile
from mimo_lite.rl.executor import RewardExecutor
from mimo_lite.rl.seamless import Sample
from mimo_lite.rl.trainer import micro_batches, sequence_logprobs, update

VOCAB = 96


def tiny_model():
    torch.manual_seed(0)
    return MiMoForCausalLM(preset("smoke", vocab_size=VOCAB))


def samples(n=7, seed=0):
    """Answers of varied prompt and answer lengths, π_old's log-probs near the model's, advantages ±."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        prompt = [rng.randrange(2, VOCAB) for _ in range(rng.randint(2, 6))]
        tokens = [rng.randrange(2, VOCAB) for _ in range(rng.randint(1, 9))]
        out.append(Sample({"id": f"p{i}"}, prompt, tokens, [-4.6 + rng.uniform(-0.3, 0.3) for _ in tokens],
                          "", advantage=rng.choice([-1.0, 0.5, 1.2])))
    return out


def full_logprobs(model, batch, temperature):
    """The reference: the whole (B, T, V) log-softmax, each answer token's entry picked from it."""
    lengths = [len(s.prompt) + len(s.tokens) for s in batch]
    ids = torch.zeros(len(batch), max(lengths), dtype=torch.long)
    for i, s in enumerate(batch):
        ids[i, :lengths[i]] = torch.tensor(s.prompt + s.tokens)
    logp = (model(ids).logits[:, :-1].float() / temperature).log_softmax(-1)      # (B, T-1, V)
    entropy = -(logp.exp() * logp).sum(-1)
    return logp.gather(-1, ids[:, 1:, None]).squeeze(-1), entropy.detach()


@pytest.mark.parametrize("chunk", [0, 1, 5, 1000])
def test_chunked_logprobs_equal_the_full_log_softmax_in_value_and_gradient(chunk):
    batch, weights = samples(), torch.randn(7, 15, generator=torch.Generator().manual_seed(1))
    model, reference = tiny_model(), tiny_model()
    logprobs, _, mask, entropy = sequence_logprobs(model, batch, 0.7, chunk)
    expect, expect_entropy = full_logprobs(reference, batch, 0.7)
    assert logprobs.shape == expect.shape == mask.shape
    assert torch.allclose(logprobs * mask, expect * mask, rtol=0, atol=1e-6)             # fp32: within 1e-6
    assert torch.allclose(entropy * mask, expect_entropy * mask, rtol=1e-6, atol=1e-6)    # a metric: a few ulp
    (logprobs * mask * weights[:, :mask.shape[1]]).sum().backward()
    (expect * mask * weights[:, :mask.shape[1]]).sum().backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        if q.grad is None:                                                            # the MTP layers
            assert p.grad is None, name
        else:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.parametrize("chunk", [0, 4])
def test_the_backward_keeps_at_most_chunk_rows_of_vocabulary_width(chunk):
    """What autograd saves for the backward: with chunks, no V-wide tensor of more than `chunk`
    rows (each chunk is recomputed); without, the whole batch's logits (the small-vocabulary path)."""
    batch = samples()
    rows = []

    def pack(t):
        if t.dim() and t.shape[-1] == VOCAB:
            rows.append(t.numel() // VOCAB)
        return t
    model = tiny_model()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        logprobs, _, mask, _ = sequence_logprobs(model, batch, 1.0, chunk)
    (logprobs * mask).sum().backward()
    positions = sum(len(s.prompt) + len(s.tokens) for s in batch)
    if chunk:
        assert max(rows, default=0) <= chunk
    else:
        assert max(rows) >= positions


def step(batch, **overrides):
    """One GRPO update (a single mini-batch) with plain SGD at lr 1: the weights move by −gradient."""
    model = tiny_model()
    cfg = RLSection(updates_per_step=1, grad_clip=1e9, temperature=0.8, **overrides)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    stats = update(model, optimizer, [batch], cfg, torch.Generator().manual_seed(0))
    return model, stats


@pytest.mark.parametrize("token_level", [True, False])
def test_token_budget_micro_batches_take_the_same_step_as_one_batch(token_level):
    batch = samples(9, seed=3)
    whole, whole_stats = step(batch, token_level=token_level)
    parts = micro_batches(batch, 24)
    assert len(parts) > 2 and sorted(id(s) for p in parts for s in p) == sorted(id(s) for s in batch)
    for part in parts:                          # each fits the budget, or is one sequence alone
        longest = max(len(s.prompt) + len(s.tokens) for s in part)
        assert len(part) * longest <= 24 or len(part) == 1
    split, split_stats = step(batch, token_level=token_level, micro_batch_tokens=24, logprob_chunk=3)
    assert split_stats["updates"] == whole_stats["updates"] == 1
    for k in ("ratio", "clip_low", "clip_high", "entropy"):
        assert split_stats[k] == pytest.approx(whole_stats[k], abs=1e-6)
    if token_level:                  # the token-weighted mean of the parts' losses is the whole's
        assert split_stats["loss"] == pytest.approx(whole_stats["loss"], abs=1e-6)
    start = tiny_model().state_dict()
    moved = False
    for (name, a), b in zip(whole.state_dict().items(), split.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
        moved |= not torch.equal(a, start[name])
    assert moved


def test_defaults_keep_the_whole_batch_in_one_pass():
    cfg = RLSection()
    assert cfg.logprob_chunk == 0 and cfg.micro_batch_tokens == 0
    batch = samples()
    assert micro_batches(batch, 0) == [batch]
    for name in ("smoke", "toy", "gpu"):
        rl = load_profile(name).rl
        assert rl.logprob_chunk >= 0 and rl.micro_batch_tokens >= 0


def reward_by_text(problem, text, scheme):
    return float(text == "yes")


def start_method(problem, text, scheme):
    import multiprocessing
    return float(multiprocessing.get_start_method() == "spawn")


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads the worker's mapped libraries in /proc")
def test_a_reward_worker_never_loads_torch():
    """A worker imports the verifier and the sandbox, never the model: at 7B a reward machine runs
    one worker per CPU, and torch would cost each of them seconds to start and most of a GB."""
    with RewardExecutor(1) as executor:
        scored = executor.submit({"id": "sq", "domain": "math", "answer": "49"}, "</think> \\boxed{49}")
        assert scored.result().reward == 1.0
        [pid] = executor.pool._processes
        libraries = Path(f"/proc/{pid}/maps").read_text()
    assert "libtorch" not in libraries and "python" in libraries


def test_the_reward_pool_spawns_its_workers():
    with RewardExecutor(1, score_fn=reward_by_text) as executor:
        assert executor.pool._mp_context.get_start_method() == "spawn"
        assert executor.submit({"id": "a"}, "yes").result().reward == 1.0
        assert executor.submit({"id": "a"}, "start").result().reward == 0.0
    with RewardExecutor(1, score_fn=start_method) as executor:
        assert executor.submit({"id": "a"}, "").result().reward == 1.0      # seen from inside the worker
