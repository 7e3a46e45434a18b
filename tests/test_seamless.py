"""The Seamless Rollout scheduler (rl/seamless.py): every configuration of Table 2 yields one
on-policy GRPO batch, accounts for every answer, and orders as the paper's table does."""

import itertools
import math
import os
import random
from collections import deque

import pytest
import torch

from infer_models import one_thread  # noqa: F401  (autouse fixture)
from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.infer import Completion
from mimo_lite.profile import RLSection, SettingError
from mimo_lite.rl.batches import ProblemSampler
from mimo_lite.rl.executor import RewardExecutor
from mimo_lite.rl.rollout import EngineRollout
from mimo_lite.rl.seamless import ROLLOUT_MODES, VirtualCost, collect, measure, table, validate
from mimo_lite.rl.seamless_sim import row
from mimo_lite.rl.trainer import train_grpo
from test_grpo import FakeTokenizer, InlineExecutor, small_token_reward

RIGHT, WRONG, FILL = 5, 6, 7


class NumberTokenizer:
    """Prompt k is the ids [2, 10 + k]; an answer decodes to its token ids."""
    eos_token_id = 1

    def apply_chat_template(self, messages, **kw):
        return [2, 10 + int(messages[0]["content"])]

    def decode(self, tokens, skip_special_tokens=False):
        return " ".join(str(t) for t in tokens)


class FakeBackend:
    """The rollout backend's interface without a model. An answer's length is lognormal (a heavy
    tail, cut at `cap`), its first token says right or wrong with the prompt's pass rate; both come
    from the request's seed. Rows are admitted first come, first served, as the Engine does."""

    def __init__(self, pass_rates, slots=8, median=20.0, sigma=1.2, cap=300, stamp_lag=0):
        self.pass_rates, self.max_batch_size = pass_rates, slots
        self.median, self.sigma, self.cap, self.stamp_lag = median, sigma, cap, stamp_lag
        self.policy_version, self.steps, self.next_id = 0, 0, 0
        self.meta, self.waiting, self.rows = {}, deque(), {}
        self.shared = random.Random(0)

    def submit(self, prompt, meta=None, seed=None):
        rng = random.Random(seed) if seed is not None else self.shared
        length = min(self.cap, max(1, round(self.median * math.exp(self.sigma * rng.gauss(0, 1)))))
        right = rng.random() < self.pass_rates[prompt[-1] - 10]
        rid, self.next_id = self.next_id, self.next_id + 1
        self.meta[rid] = meta
        self.waiting.append((Completion(rid, list(prompt), arrival_step=self.steps), length, right))
        return rid

    def step(self):
        self.steps += 1
        done = []
        for rid, (c, n, _) in list(self.rows.items()):
            c.tokens.append(FILL)
            c.logprobs.append(-1.0)
            if len(c.tokens) >= n:
                done.append(c)
        while self.waiting and len(self.rows) - len(done) < self.max_batch_size:
            c, n, right = self.waiting.popleft()
            c.start_step, c.policy_version = self.steps, self.policy_version - self.stamp_lag
            c.tokens, c.logprobs = [RIGHT if right else WRONG], [-1.0]
            self.rows[c.request_id] = (c, n, right)
            if n == 1:
                done.append(c)
        for c in done:
            c.finish_reason, c.end_step = "stop", self.steps
            del self.rows[c.request_id]
        return [(self.meta.pop(c.request_id), c) for c in done]

    def abort(self, ids):
        out = []
        for rid in ids:
            if rid in self.rows:
                out.append(self.rows.pop(rid)[0])
            elif any(w[0].request_id == rid for w in self.waiting):
                out += [w[0] for w in self.waiting if w[0].request_id == rid]
                self.waiting = deque(w for w in self.waiting if w[0].request_id != rid)
        for c in out:
            c.finish_reason = "abort"
        return [(self.meta.pop(c.request_id), c) for c in out]

    def idle(self):
        return not self.meta

    def set_policy(self, version):
        assert self.idle(), "on-policy: weights change only while idle"
        self.policy_version = version

    def rollouts(self, prompts, seed):
        self.shared = random.Random(seed)
        for i, p in enumerate(prompts):
            self.submit(p, i)
        while not self.idle():
            yield from self.step()


class FakeExecutor(InlineExecutor):
    """Scores in this process: 1 for a right answer, 0 for a wrong one; `workers` reward workers
    on the virtual clock."""

    def __init__(self, score_fn=None, workers=2):
        super().__init__(score_fn or right_answer)
        self.workers = workers


def right_answer(problem, text, scheme):
    return float(text.split()[0] == str(RIGHT))


def workload(n=40, seed=0, domain="code"):
    rng = random.Random(seed)
    rates = [rng.choice([0.0, 0.0, 1.0]) if rng.random() < 0.3 else rng.random() for _ in range(n)]
    problems = [{"id": f"p{k}", "prompt": str(k), "domain": domain} for k in range(n)]
    return problems, rates


def run(mode, seed=0, batch=4, group=4, slots=8, sigma=1.2, steps=1, executor=None, **backend_kw):
    problems, rates = workload(seed=seed)
    backend = FakeBackend(rates, slots=slots, sigma=sigma, **backend_kw)
    cfg = RLSection(batch_prompts=batch, group_size=group, max_rounds=6)
    sampler = ProblemSampler(problems, 0.1, True, seed)
    out = []
    for k in range(steps):
        backend.set_policy(k)
        out.append(collect(backend, executor or FakeExecutor(), sampler, NumberTokenizer(), cfg,
                           seed * 100 + k, mode=mode))
    return backend, out


@pytest.mark.parametrize("mode", ROLLOUT_MODES + ("take_finished",))
def test_every_launched_answer_ends_selected_dropped_or_aborted(mode):
    for seed in range(4):
        backend, [(kept, info)] = run(mode, seed)
        rec = info["record"]
        assert backend.idle()
        assert len(kept) == 4 and all(len(g) == 4 for g in kept)
        assert rec.launched == rec.selected + rec.dropped_zero + rec.dropped_excess + rec.aborted
        assert rec.launched == info["rollouts"] == 4 * len(info["tasks"])
        for task in info["tasks"]:
            assert task.outcome in ("selected", "dropped_zero", "dropped_excess", "aborted")
            for s, n in zip(task.samples, task.times_scored):
                assert n == (s.finish_reason != "abort")      # each finished answer scored exactly once
                assert task.outcome == "aborted" or s.finish_reason != "abort"
        for g in kept:
            assert sum(s.advantage for s in g) == pytest.approx(0.0, abs=1e-5)
            if mode != "no_dynamic_sampling":
                assert len({s.scored.reward for s in g}) > 1  # dynamic sampling: signal in every group
        if mode not in ("early_termination", "take_finished"):
            assert rec.aborted == 0
        assert rec.selected_lengths == [len(s.tokens) for g in kept for s in g]
        bars = info["timeline"]                  # Gantt bars: (lane, start, end, what)
        assert bars and all(0 <= start <= end for _, start, end, _ in bars)
        rows = [bar for bar in bars if bar[0].startswith("row")]
        assert all(end <= rec.rollout_s for _, _, end, _ in rows)   # decoding ends with the step
        assert {lane for lane, *_ in rows} <= {f"row {k}" for k in range(8)}
        assert 0 <= info["idle_ratio"] <= 1 and 0 <= info["wall"]["idle_ratio"] <= 1


def test_no_selected_answer_comes_from_an_older_policy():
    for mode in ROLLOUT_MODES:
        backend, steps = run(mode, steps=3)
        for version, (kept, _) in enumerate(steps):
            assert {s.policy_version for g in kept for s in g} == {version}
    with pytest.raises(AssertionError, match="on-policy"):
        run("early_termination", steps=2, stamp_lag=1)


def test_fifo_selection_keeps_long_answers_that_taking_the_finished_ones_loses():
    """Abort-and-take-whatever-finished favours short answers; FIFO selects the groups the run
    without early termination would have selected (same seeds, same launch order)."""
    means = {m: [] for m in ("async_reward", "early_termination", "take_finished")}
    for seed in range(30):
        for mode in means:
            _, [(kept, info)] = run(mode, seed, batch=4, group=4, slots=16, sigma=1.5)
            means[mode].append(sum(info["record"].selected_lengths) / len(info["record"].selected_lengths))

    def diff(a, b):
        d = [x - y for x, y in zip(means[a], means[b])]
        m = sum(d) / len(d)
        se = (sum((x - m) ** 2 for x in d) / (len(d) - 1) / len(d)) ** 0.5
        return m, se
    m, se = diff("early_termination", "async_reward")
    assert abs(m) <= 2 * se + 1e-9
    m, se = diff("take_finished", "async_reward")
    assert m < -3 * se and m < -0.1 * sum(means["async_reward"]) / 30


def dying_or_raising(problem, text, scheme):
    if problem["id"] == "p1":
        os._exit(3)                               # the worker process dies
    if problem["id"] == "p2":
        raise RuntimeError("verifier crashed")
    return right_answer(problem, text, scheme)


def raising(problem, text, scheme):
    if problem["id"] == "p2":
        raise RuntimeError("verifier crashed")
    return right_answer(problem, text, scheme)


@pytest.mark.parametrize("score_fn", [raising, dying_or_raising])
def test_a_reward_worker_that_raises_or_dies_leaves_its_answer_unscored_with_the_reason(score_fn):
    problems = [{"id": f"p{k}", "prompt": str(k), "domain": "math"} for k in range(4)]
    backend = FakeBackend([0.5] * 4, slots=8, sigma=0.5)
    cfg = RLSection(batch_prompts=4, group_size=4, dynamic_sampling=False)
    sampler = ProblemSampler(problems, 0.0, False, 0)
    order = itertools.cycle(problems)
    sampler.draw = lambda n: [(next(order), False) for _ in range(n)]     # each in turn
    with RewardExecutor(2, score_fn=score_fn) as executor:
        kept, info = collect(backend, executor, sampler, NumberTokenizer(), cfg, 0, mode="async_reward")
        assert executor.submit(problems[0], "5").result().reward == 1.0   # the pool serves on
    by_id = {}
    for task in info["tasks"]:
        by_id.setdefault(task.problem["id"], []).extend(s for s in task.samples if s.finish_reason != "abort")
    if score_fn is raising:
        assert all(s.scored.reason == "RuntimeError: verifier crashed" for s in by_id["p2"])
        assert all(s.scored.ok for p in ("p0", "p1", "p3") for s in by_id[p])
    else:       # a dead worker breaks the pool: what was pending there fails too, each one reported
        assert all("reward worker failed" in s.scored.reason for s in by_id["p1"])
    unscored = [s for g in by_id.values() for s in g if not s.scored.ok]
    assert all(s.scored.reward is None and s.scored.reason and s.advantage is None
               for s in unscored)                                               # never a silent 0
    assert sum(info["unscored"].values()) == len(unscored) >= 4
    assert all(n == 1 for t in info["tasks"] for n in t.times_scored)


def test_early_termination_frees_the_engine_rows_for_new_requests():
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("smoke", vocab_size=32)).eval()
    backend = EngineRollout(model, FakeTokenizer(), max_new_tokens=12, max_batch_size=2)
    problems = [{"id": f"p{i}", "prompt": str(i)} for i in range(8)]
    cfg = RLSection(batch_prompts=1, group_size=3, max_new_tokens=12, max_rounds=8)
    aborted = 0
    for seed in range(4):
        kept, info = collect(backend, InlineExecutor(small_token_reward), ProblemSampler(problems, 0.0, seed=seed),
                             FakeTokenizer(), cfg, seed, mode="early_termination")
        aborted += info["record"].aborted
        assert backend.idle() and not backend.engine.has_unfinished() and not backend.engine.rows
        rid = backend.submit([2, 3, 4], meta="after", seed=1)
        done = {}
        while not backend.idle():
            done.update(backend.step())
        assert done["after"].finish_reason in ("stop", "length") and rid >= 0
    assert aborted > 0


def step_time(mode, seeds=range(6)):
    """Virtual seconds per step, summed over seeds: heavy-tailed answers (median 40 tokens), code
    problems whose reward takes 3 engine steps on one of 4 reward workers."""
    total = 0.0
    for seed in seeds:
        problems, rates = workload(seed=seed)
        backend = FakeBackend(rates, slots=16, median=40.0, sigma=1.5, cap=800)
        cfg = RLSection(batch_prompts=4, group_size=4, max_rounds=6)
        result, _ = measure(backend, FakeExecutor(workers=4), problems, NumberTokenizer(), cfg, mode,
                            steps=2, seed=seed, cost=VirtualCost(code_reward=3.0))
        total += result.step_s
    return total


def test_virtual_step_time_orders_as_table_2_with_slow_code_rewards():
    t = {m: step_time(m) for m in ("naive", "continuous", "async_reward", "early_termination")}
    assert t["naive"] >= t["continuous"] >= t["async_reward"] >= t["early_termination"], t


def test_measured_runs_print_the_simulators_table():
    results = {}
    for mode in ROLLOUT_MODES:
        problems, rates = workload()
        results[mode], _ = measure(FakeBackend(rates, slots=16), FakeExecutor(), problems, NumberTokenizer(),
                                   RLSection(batch_prompts=4, group_size=4), mode, steps=2)
    rows = table(results)
    assert [r["mode"] for r in rows] == list(ROLLOUT_MODES)
    assert rows[1]["overall_speedup"] == 1.0 and set(rows[0]) == set(row(results["naive"], results["naive"]))
    assert rows[0]["sample_waste"] == 0.0 and all(0 <= r["idle_ratio"] <= 1 for r in rows)


def test_validation_scores_the_whole_set_the_same_with_barrier_or_async_reward():
    problems, rates = workload(n=12)
    out = {s: validate(FakeBackend(rates, slots=8), FakeExecutor(workers=2), problems, NumberTokenizer(),
                       samples=2, scoring=s, cost=VirtualCost(code_reward=30.0)) for s in ("barrier", "async")}
    assert out["barrier"]["rewards"] == out["async"]["rewards"] and len(out["async"]["rewards"]) == 24
    assert out["async"]["record"].selected == 24 and out["async"]["record"].aborted == 0
    assert out["async"]["virtual_steps"] < out["barrier"]["virtual_steps"]
    assert out["async"]["idle_ratio"] < out["barrier"]["idle_ratio"]


def test_the_rollout_mode_is_a_checked_profile_setting():
    assert RLSection().rollout_mode == "naive"
    with pytest.raises(SettingError, match="rollout_mode"):
        RLSection(rollout_mode="fastest")
    with pytest.raises(SettingError, match="dynamic_sampling is false"):
        RLSection(rollout_mode="early_termination", dynamic_sampling=False)


@pytest.mark.parametrize("mode", ["continuous", "early_termination"])
def test_grpo_trains_under_a_seamless_mode(tmp_path, mode):
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("smoke", vocab_size=32))
    problems = [{"id": f"p{i}", "prompt": str(i)} for i in range(8)]
    cfg = RLSection(batch_prompts=2, group_size=4, lr=3e-3, max_new_tokens=4, max_rounds=3,
                    updates_per_step=1, checkpoint_every=50, rollout_mode=mode)
    lines = train_grpo(model, FakeTokenizer(), problems, cfg, tmp_path / "run", steps=2,
                       executor=InlineExecutor(small_token_reward), progress=False)
    assert len(lines) == 2 and all(line["rollouts"] > 0 for line in lines)


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="Unknown rollout mode"):
        run("one_step_stale")
    with pytest.raises(ValueError, match="needs a backend with submit"):
        collect(object(), FakeExecutor(), ProblemSampler(*workload()[:1]), NumberTokenizer(),
                RLSection(batch_prompts=1, group_size=2), 0, mode="async_reward")
