"""The persistent rollout backend: one engine across calls and training steps, a stream of
requests that may be aborted, and the policy version on every completion."""

import ast
from pathlib import Path

import pytest
import torch

from infer_models import one_thread  # noqa: F401  (autouse fixture)
from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.infer import Engine, SamplingParams
from mimo_lite.profile import RLSection
from mimo_lite.rl.rollout import EngineRollout
from mimo_lite.rl.trainer import train_grpo
from test_grpo import FakeTokenizer, InlineExecutor, small_token_reward

PROMPTS = [[2, 3, 5], [2, 3, 6, 1], [7], [2, 3, 4, 4, 9], [8, 8], [5, 1, 2]]


def small_model():
    torch.manual_seed(0)
    return MiMoForCausalLM(preset("smoke", vocab_size=32)).eval()


def fresh_engine_rollouts(model, prompts, seed, max_new_tokens, max_batch_size):
    """What rollouts() computed before the engine was kept: a new Engine for every call."""
    params = SamplingParams(temperature=1.0, max_new_tokens=max_new_tokens,
                            stop_token_ids=(FakeTokenizer.eos_token_id,), seed=seed)
    engine = Engine(model, params, max_batch_size=min(max_batch_size, len(prompts)),
                    max_length=max(map(len, prompts)) + max_new_tokens)
    for prompt in prompts:
        engine.add_request(prompt)
    return {c.request_id: c for c in engine.run()}


def test_one_engine_serves_calls_across_weight_updates_as_fresh_engines_would():
    model = small_model()
    backend = EngineRollout(model, FakeTokenizer(), max_new_tokens=6, max_batch_size=4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    engines = set()
    for call in range(3):
        prompts = PROMPTS[call:] + PROMPTS[:call]
        got = dict(backend.rollouts(prompts, seed=call))
        engines.add(id(backend.engine))
        want = fresh_engine_rollouts(model, prompts, call, 6, 4)
        assert sorted(got) == list(range(len(prompts)))
        for i, c in got.items():
            assert c.tokens == want[i].tokens and c.logprobs == want[i].logprobs
            assert c.policy_version == call
        model.train()                                 # a training step changes the weights in place
        model(torch.tensor([PROMPTS[3]]), labels=torch.tensor([PROMPTS[3]])).loss.backward()
        optimizer.step()
        model.eval()
        backend.set_policy(call + 1)
    assert len(engines) == 1


def drain(backend) -> dict:
    """Step until idle: {meta: completion} of everything that finished."""
    done = {}
    while not backend.idle():
        done.update(backend.step())
    return done


def test_stream_submit_step_abort_and_idle():
    model = small_model()
    backend = EngineRollout(model, FakeTokenizer(), max_new_tokens=8, max_batch_size=2)
    ids = [backend.submit(p, meta=("problem", i), seed=10 + i) for i, p in enumerate(PROMPTS[:4])]
    assert not backend.idle()
    done = dict(backend.step() + backend.step())
    with pytest.raises(RuntimeError, match="needs an idle backend"):
        next(backend.rollouts(PROMPTS, seed=0))
    with pytest.raises(RuntimeError, match="requests are running under version 0"):
        backend.set_policy(1)
    aborted = dict(backend.abort([ids[0], ids[3]]))   # one running, one waiting
    assert aborted[("problem", 0)].finish_reason == "abort" and len(aborted[("problem", 0)].tokens) == 2
    assert aborted[("problem", 3)].tokens == []
    late = backend.submit([9, 9, 9], meta="late", seed=20)
    done.update(drain(backend))
    assert set(done) == {("problem", 1), ("problem", 2), "late"}
    assert backend.abort([late]) == []                  # finished already: nothing to stop
    backend.set_policy(1)                              # idle now
    backend.submit(PROMPTS[0], meta="v1", seed=10)
    assert drain(backend)["v1"].policy_version == 1
    # its own seed: the same answer as request 1 in a batch of other requests, seen alone
    solo = EngineRollout(model, FakeTokenizer(), max_new_tokens=8, max_batch_size=1)
    solo.submit(PROMPTS[1], meta="alone", seed=11)
    assert drain(solo)["alone"].tokens == done[("problem", 1)].tokens


def test_stopping_a_rollout_batch_early_frees_the_engine():
    backend = EngineRollout(small_model(), FakeTokenizer(), max_new_tokens=6, max_batch_size=2)
    stream = backend.rollouts(PROMPTS, seed=0)
    next(stream)
    stream.close()
    assert backend.idle() and not backend.engine.has_unfinished()
    assert len(dict(backend.rollouts(PROMPTS, seed=1))) == len(PROMPTS)


def test_the_engine_is_rebuilt_when_the_weights_change_dtype():
    model = small_model()
    backend = EngineRollout(model, FakeTokenizer(), max_new_tokens=4)
    dict(backend.rollouts(PROMPTS, seed=0))
    first = backend.engine
    model.double()
    got = dict(backend.rollouts(PROMPTS, seed=0))
    assert backend.engine is not first and backend.engine.cache.k.dtype == torch.float64
    assert len(got) == len(PROMPTS)


class Recording(EngineRollout):
    """The default backend, noting each training step's completions and engine."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def rollouts(self, prompts, seed):
        for i, c in super().rollouts(prompts, seed):
            self.seen.append((self.policy_version, c.policy_version, id(self.engine)))
            yield i, c


def test_grpo_steps_share_one_engine_and_each_step_samples_its_own_policy(tmp_path):
    problems = [{"id": f"p{i}", "prompt": str(i)} for i in range(8)]
    cfg = RLSection(batch_prompts=2, group_size=4, lr=3e-3, max_new_tokens=3, max_rounds=2,
                    updates_per_step=1, checkpoint_every=50)
    model = small_model()
    backend = Recording(model, FakeTokenizer(), max_new_tokens=3)
    train_grpo(model, FakeTokenizer(), problems, cfg, tmp_path / "run", steps=3,
               executor=InlineExecutor(small_token_reward), backend=backend, progress=False)
    assert {backend_version for backend_version, _, _ in backend.seen} == {0, 1, 2}
    assert all(stamp == version for version, stamp, _ in backend.seen)
    assert len({engine for _, _, engine in backend.seen}) == 1
    assert backend.policy_version == 3


def test_the_trainer_generates_only_through_the_rollout_interface():
    """trainer.py imports nothing from the inference layer: its view of generation is the backend."""
    source = Path(__file__).resolve().parents[1] / "mimo_lite" / "rl" / "trainer.py"
    modules = {node.module for node in ast.walk(ast.parse(source.read_text()))
               if isinstance(node, ast.ImportFrom)}
    assert not any(m and m.split(".")[0] == "infer" for m in modules), modules
