"""GRPO: the objective by hand, dynamic sampling, the easy pool, unscored samples, a learnable task."""

import json
import logging
import math
from concurrent.futures import Future

import pytest
import torch

from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.infer import Completion
from mimo_lite.profile import RLSection, load_profile
from mimo_lite.tasks import rewards
from mimo_lite.rl.batches import ProblemSampler, dynamic_sampling, zero_advantage
from mimo_lite.rl.executor import RewardExecutor, Scored, score_safely
from mimo_lite.rl.grpo import group_advantages, grpo_loss, token_weights
from mimo_lite.rl.trainer import collect_groups, train_grpo


# ---- the objective ------------------------------------------------------------------------------

def batch():
    """Two answers, advantages +1 and −1, ratios chosen to hit both clip bounds; old log-probs 0."""
    ratios = torch.tensor([[1.5, 1.0, 0.7], [0.5, 1.5, 1.0]])
    logprobs = ratios.log().requires_grad_()
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0]])                 # the second answer has 2 tokens
    return logprobs, torch.zeros(2, 3), torch.tensor([1.0, -1.0]), mask


def test_loss_clips_both_sides_at_token_level_by_hand():
    logprobs, old, adv, mask = batch()
    loss, stats = grpo_loss(logprobs, old, adv, mask, eps_low=0.2, eps_high=0.28)
    # A=+1: min(1.5, 1.28)=1.28, min(1, 1)=1, min(0.7, 0.8)=0.7
    # A=−1: min(−0.5, −0.8)=−0.8 (clipped low), min(−1.5, −1.28)=−1.5 (not clipped)
    assert loss.item() == pytest.approx(-(1.28 + 1 + 0.7 - 0.8 - 1.5) / 5)
    assert stats.clip_high == pytest.approx(1 / 5) and stats.clip_low == pytest.approx(1 / 5)
    assert stats.tokens == 5
    loss.backward()
    # clipped tokens get no gradient; the others −ρ·A / Σ|o_i|; padding none
    expect = torch.tensor([[0.0, -1.0 / 5, -0.7 / 5], [0.0, 1.5 / 5, 0.0]])
    assert torch.allclose(logprobs.grad, expect, atol=1e-6)


def test_sequence_level_mean_weighs_each_answer_equally():
    logprobs, old, adv, mask = batch()
    loss, _ = grpo_loss(logprobs, old, adv, mask, token_level=False)
    assert loss.item() == pytest.approx(-((1.28 + 1 + 0.7) / 3 + (-0.8 - 1.5) / 2) / 2)
    assert torch.allclose(token_weights(mask, True), mask / 5)
    assert torch.allclose(token_weights(mask, False)[1, :2], torch.tensor([0.25, 0.25]))
    assert torch.allclose(token_weights(mask, False)[0], torch.full((3,), 1 / 6))


def test_kl_switch_and_on_policy_ratio():
    logprobs, _, adv, mask = batch()
    old = logprobs.detach().clone()                              # on-policy: every ratio is 1
    loss, stats = grpo_loss(logprobs, old, adv, mask, kl_coef=0.5, ref_logprobs=old)
    assert stats.kl == pytest.approx(0.0) and stats.ratio_mean == pytest.approx(1.0)
    assert loss.item() == pytest.approx(-(3 - 2) / 5)
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo_loss(logprobs, old, adv, mask, kl_coef=0.1)


def test_group_advantages():
    adv = group_advantages([1.0, 0.0, None, 0.0, 1.0])
    assert adv[2] is None
    assert adv[0] == pytest.approx(0.5 / math.sqrt(1 / 3), rel=1e-4) and adv[1] == pytest.approx(-adv[0])
    assert group_advantages([1.0, 1.0, 1.0]) == [0.0, 0.0, 0.0]


# ---- dynamic sampling and the easy pool ---------------------------------------------------------

def test_dynamic_sampling_drops_exactly_the_all_pass_and_all_fail_groups():
    groups = [[1, 1, 1], [0, 0, 0], [1, 0, 1], [0, None, 0], [0, 0, 1], [1, None, 1], [None, 1, None]]
    kept, dropped = dynamic_sampling(groups, lambda g: g, batch_prompts=10)
    assert kept == [[1, 0, 1], [0, 0, 1]]
    assert all(zero_advantage(g) for g in dropped) and len(dropped) == 5
    kept, dropped = dynamic_sampling(groups, lambda g: g, batch_prompts=1)
    assert kept == [[1, 0, 1]]


def test_easy_pool_is_drawn_at_rate_alpha():
    problems = [{"id": str(i)} for i in range(100)]
    sampler = ProblemSampler(problems, alpha=0.1, seed=1)
    for p in problems[:10]:
        sampler.observe(p, [1.0, 1.0, 1.0])
    sampler.observe(problems[10], [1.0, 0.0, 1.0])                 # not perfect: stays active
    assert sorted(sampler.easy) == [str(i) for i in range(10)]
    drawn = sampler.draw(20_000)
    rate = sampler.easy_draws / sampler.draws
    assert abs(rate - 0.1) < 4 * math.sqrt(0.1 * 0.9 / 20_000)
    assert sum(from_easy for _, from_easy in drawn) == sampler.easy_draws
    assert all((p["id"] in sampler.easy) == from_easy for p, from_easy in drawn)  # easy only via the pool
    removed = ProblemSampler(problems, alpha=0.0, seed=1)
    for p in problems[:10]:
        removed.observe(p, [1.0, 1.0])
    assert not any(p["id"] in removed.easy or from_easy for p, from_easy in removed.draw(2000))


class FakeTokenizer:
    """Token ids as text: the chat template is three fixed ids before the prompt's number."""
    eos_token_id = 1

    def apply_chat_template(self, messages, **kw):
        return [2, 3, 4 + int(messages[0]["content"]) % 8]

    def decode(self, tokens, skip_special_tokens=False):
        return " ".join(str(t) for t in tokens)


class ScriptedBackend:
    """Answers '1' or '0' as the problem's `script` says, one character per group member."""

    def __init__(self, problems_by_prompt):
        self.by_prompt = problems_by_prompt

    def rollouts(self, prompts, seed):
        seen = {}
        for i, prompt in enumerate(prompts):
            k = seen[tuple(prompt)] = seen.get(tuple(prompt), -1) + 1
            token = int(self.by_prompt[tuple(prompt)]["script"][k % 4])
            yield i, Completion(i, list(prompt), tokens=[token], logprobs=[-0.5])


class InlineExecutor:
    """The executor's contract, scored in this process (the pool is tested separately)."""

    def __init__(self, score_fn):
        self.score_fn = score_fn

    def submit(self, problem, text):
        f = Future()
        f.set_result(score_safely(self.score_fn, problem, text, "soft"))
        return f


def reward_is_text(problem, text, scheme):
    return float(text)


def test_dynamic_sampling_fills_the_batch_from_over_sampled_rounds():
    scripts = ["1111", "0000", "1010", "0001", "0000", "1111", "0110", "0000"]
    problems = [{"id": f"p{i}", "prompt": str(i), "script": s} for i, s in enumerate(scripts)]
    tok = FakeTokenizer()
    backend = ScriptedBackend({tuple(tok.apply_chat_template([{"content": p["prompt"]}])): p
                               for p in problems})
    cfg = RLSection(batch_prompts=6, group_size=4, oversample=2.0, max_rounds=20)
    kept, info = collect_groups(backend, InlineExecutor(reward_is_text),
                                ProblemSampler(problems, 0.0, seed=0), tok, cfg, seed=0)
    assert len(kept) == cfg.batch_prompts
    assert all(g[0].problem["script"] in ("1010", "0001", "0110") for g in kept)
    assert info["groups"] - info["zero_advantage"] >= cfg.batch_prompts > 0 < info["zero_advantage"]
    assert info["rollouts"] == 4 * info["groups"] > 4 * cfg.batch_prompts
    for g in kept:
        assert sum(s.advantage for s in g) == pytest.approx(0.0, abs=1e-5)
    # the main pool's groups are counted apart from the easy pool's
    assert info["main_groups"] == info["groups"] and info["main_signal"] == info["groups"] - info["zero_advantage"]
    sampler = ProblemSampler(problems, 0.5, seed=0)
    for p in problems:
        if p["script"] in ("1111", "0000"):
            sampler.observe(p, [1.0] * 4 if p["script"] == "1111" else [0.0] * 4)
    assert sampler.easy == ["p0", "p5"]
    kept, info = collect_groups(backend, InlineExecutor(reward_is_text), sampler, tok, cfg, seed=0)
    assert info["groups"] - info["main_groups"] == sampler.easy_draws > 0   # easy draws: all-pass groups
    assert info["main_signal"] == info["groups"] - info["zero_advantage"]
    # without dynamic sampling: one round, every group kept (zero-advantage ones included)
    plain = cfg.with_overrides(dynamic_sampling=False)
    kept, info = collect_groups(backend, InlineExecutor(reward_is_text),
                                ProblemSampler(problems, 0.0, seed=0), tok, plain, seed=0)
    assert len(kept) == cfg.batch_prompts and info["rounds"] == 1


# ---- unscored samples ---------------------------------------------------------------------------

def reward_or_raise(problem, text, scheme):
    if text == "0":
        raise RuntimeError("verifier crashed")
    return 1.0


def test_a_raising_reward_marks_the_sample_unscored(caplog):
    scripts = ["1010", "0110"]
    problems = [{"id": f"p{i}", "prompt": str(i), "script": s} for i, s in enumerate(scripts)]
    tok = FakeTokenizer()
    backend = ScriptedBackend({tuple(tok.apply_chat_template([{"content": p["prompt"]}])): p
                               for p in problems})
    cfg = RLSection(batch_prompts=2, group_size=4, dynamic_sampling=False)
    with caplog.at_level(logging.WARNING, logger="mimo_lite.rl"), \
            RewardExecutor(1, score_fn=reward_or_raise) as executor:
        kept, info = collect_groups(backend, executor, ProblemSampler(problems, 0.0, seed=0),
                                    tok, cfg, seed=0)
    unscored = [s for g in kept for s in g if not s.scored.ok]
    assert len(unscored) == 4 and info["unscored"] == {"RuntimeError": 4}
    assert all("verifier crashed" in s.scored.reason and s.advantage is None for s in unscored)
    assert all(s.scored.reward == 1.0 for g in kept for s in g if s.scored.ok)       # never a silent 0
    assert len([r for r in caplog.records if "verifier crashed" in r.getMessage()]) == 4


def broken_sandbox(program, tests, limits=None):
    raise OSError("cannot start the sandbox")


def score_without_sandbox(problem, text, scheme):
    """`rewards.score` in a worker whose sandbox cannot start (the patch lives in that worker only)."""
    rewards.run_tests = broken_sandbox
    return rewards.score(problem, text, scheme)


def test_a_sandbox_failure_marks_the_sample_unscored():
    problem = {"id": "c", "domain": "code", "prompt": "p", "tests": [{"input": "1", "output": "1\n"}]}
    answer = "<think>x</think>\n```python\nprint(input())\n```"
    with RewardExecutor(1, score_fn=score_without_sandbox) as executor:
        scored = executor.submit(problem, answer).result()
        assert scored == Scored(None, "OSError: cannot start the sandbox")
        no_code = executor.submit(problem, "<think>x</think> no program").result()
        assert no_code == Scored(0.0)                                 # no block: a real 0, scored
        math = executor.submit({"id": "m", "domain": "math", "prompt": "p", "answer": "2"},
                               "</think> \\boxed{2}").result()
        assert math == Scored(1.0)


# ---- a learnable task end to end ----------------------------------------------------------------

def small_token_reward(problem, text, scheme):
    """Reward 1 when the answer's first token id is below 8 (a quarter of the vocabulary)."""
    return float(int(text.split()[0]) < 8)


def tiny_model():
    torch.manual_seed(0)
    return MiMoForCausalLM(preset("smoke", vocab_size=32))


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))])
def test_grpo_learns_a_trivial_task_and_keeps_the_mtp_layers(tmp_path, device):
    model = tiny_model().to(device)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    problems = [{"id": f"p{i}", "prompt": str(i)} for i in range(8)]
    cfg = RLSection(batch_prompts=4, group_size=8, updates_per_step=2, lr=3e-3, max_new_tokens=3,
                    temperature=1.0, checkpoint_every=5, max_rounds=3)
    lines = train_grpo(model, FakeTokenizer(), problems, cfg, tmp_path / "run", steps=14, seed=0,
                       executor=InlineExecutor(small_token_reward), progress=False)
    rewards = [m["reward"] for m in lines]
    assert sum(rewards[-3:]) / 3 > rewards[0] + 0.3, rewards
    after = model.state_dict()
    mtp = [k for k in after if "mtp_layers" in k]
    assert mtp and all(torch.equal(before[k], after[k]) for k in mtp)
    assert next(model.parameters()).device.type == device
    assert any(not torch.equal(before[k], after[k]) for k in after if "mtp_layers" not in k)
    for m in lines:
        assert {"reward", "entropy", "response_length", "clip_low", "clip_high", "easy_pool",
                "zero_advantage_fraction", "rollouts_per_valid_batch", "unscored", "signal_groups",
                "main_pool_groups", "main_pool_signal_groups", "main_rollouts_per_valid_batch"} <= set(m)
        assert m["signal_groups"] <= m["valid_groups"] and m["main_pool_signal_groups"] <= m["main_pool_groups"]

    # resume: a longer run continues from the last checkpoint (step 14), metrics stay one per step
    more = train_grpo(model, FakeTokenizer(), problems, cfg, tmp_path / "run", steps=16, seed=0,
                      executor=InlineExecutor(small_token_reward), progress=False)
    assert [m["step"] for m in more] == [15, 16]
    steps = [json.loads(l)["step"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 17))
    pool = json.loads((tmp_path / "run" / "easy_pool.json").read_text())
    assert pool == [p for p in pool if p in {q["id"] for q in problems}]

    # a run that continues another starts with its easy pool (and ignores it without the filter)
    seeded = train_grpo(tiny_model(), FakeTokenizer(), problems, cfg, tmp_path / "more", steps=1, seed=0,
                        executor=InlineExecutor(small_token_reward), progress=False, easy_pool=["p0", "p1"])
    assert seeded[-1]["easy_pool"] >= 2
    off = train_grpo(tiny_model(), FakeTokenizer(), problems, cfg.with_overrides(easy_filter=False),
                     tmp_path / "off", steps=1, seed=0, executor=InlineExecutor(small_token_reward),
                     progress=False, easy_pool=["p0", "p1"])
    assert off[-1]["easy_pool"] == 0 == off[-1]["easy_draws"]


def test_kl_ablation_measures_the_drift_from_the_start(tmp_path):
    problems = [{"id": f"p{i}", "prompt": str(i)} for i in range(4)]
    cfg = RLSection(batch_prompts=2, group_size=8, lr=3e-3, max_new_tokens=3, kl_coef=0.1,
                    updates_per_step=1, max_rounds=3, dynamic_sampling=False)
    lines = train_grpo(tiny_model(), FakeTokenizer(), problems, cfg, tmp_path / "kl", steps=3,
                       executor=InlineExecutor(small_token_reward), progress=False)
    assert abs(lines[0]["kl"]) < 1e-4 < lines[-1]["kl"]            # first mini-batch: π_θ = π_ref


def test_profiles_carry_an_rl_section():
    for name in ("smoke", "toy", "gpu"):
        rl = load_profile(name).rl
        assert rl.eps_high > rl.eps_low and rl.kl_coef == 0 and rl.token_level
    with pytest.raises(ValueError, match="group_size"):
        RLSection(group_size=1)
    with pytest.raises(ValueError, match="zero.nope is an unknown key"):
        RLSection(zero={"nope": 1})


def test_runs_from_one_model_share_its_start_evaluation(tmp_path, monkeypatch):
    from mimo_lite.rl import trainer

    calls = []

    def heldout_pass(model, tokenizer, problems, cfg, seed):
        calls.append(seed)
        return {"pass_at_1": 0.25 + seed, "by_tier": {"1": 0.5}, "code": None}

    monkeypatch.setattr(trainer, "heldout_pass", heldout_pass)
    path = tmp_path / "start_evaluations" / "key.json"
    first = trainer.start_evaluation(None, None, [], RLSection(), 0, path)
    again = trainer.start_evaluation(None, None, [], RLSection(), 0, path)     # read, not computed
    assert first == again == {"pass_at_1": 0.25, "by_tier": {"1": 0.5}, "code": None}
    assert calls == [0] and json.loads(path.read_text()) == first
    assert not list(path.parent.glob("*.tmp"))
    trainer.start_evaluation(None, None, [], RLSection(), 1, None)              # no file: computed
    assert calls == [0, 1]
