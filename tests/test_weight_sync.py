"""The weight-sync protocol against the kit's own engine as receiver: after a sync the rollout
copy computes the trainer's logits exactly, the MTP layers are never sent, and nothing generates
during the sync."""

import copy
import sys
from pathlib import Path

import pytest
import torch

from infer_models import one_thread  # noqa: F401  (autouse fixture)
from mimo_lite.rl.rollout import EngineRollout
from mimo_lite.rl.weight_sync import MTP_PREFIX, push_weights, weight_chunks
from test_grpo import FakeTokenizer
from test_rollout import PROMPTS, fresh_engine_rollouts, small_model

sys.path.insert(0, str(Path(__file__).parent))
import pretrain_helpers  # noqa: E402

IDS = torch.tensor([[2, 3, 5, 7, 1, 4, 9, 9], [8, 8, 2, 6, 3, 3, 5, 1]])


class Recorder:
    """A receiver that passes everything on to `backend` and keeps what it was sent."""

    def __init__(self, backend, during_load=None):
        self.backend, self.during_load = backend, during_load
        self.calls, self.chunks = [], []

    def pause(self):
        self.calls.append("pause")
        self.backend.pause()

    def load(self, chunk):
        self.calls.append("load")
        self.chunks.append([(name, t.numel() * t.element_size()) for name, t in chunk])
        if self.during_load:
            self.during_load()
        self.backend.load(chunk)

    def resume(self, version):
        self.calls.append(("resume", version))
        self.backend.resume(version)


def trained(model, steps=3):
    """`model` after a few Adam steps on every weight (the MTP layers' included, so that a sync
    that sent them would show)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        optimizer.zero_grad()
        model(IDS, labels=IDS).loss.backward()
        optimizer.step()
    return model.eval()


def test_a_sync_leaves_the_engine_with_the_trainers_logits_exactly_and_no_mtp_weights():
    trainer = small_model()
    rollout_model = copy.deepcopy(trainer)                 # the engine's own copy (vLLM's, at scale)
    backend = EngineRollout(rollout_model, FakeTokenizer(), max_new_tokens=6, max_batch_size=4)
    dict(backend.rollouts(PROMPTS, seed=0))                # the engine has served version 0
    mtp_before = {k: v.clone() for k, v in rollout_model.state_dict().items() if k.startswith(MTP_PREFIX)}
    trained(trainer)
    with torch.no_grad():
        assert not torch.equal(rollout_model(IDS).logits, trainer(IDS).logits)

    receiver = Recorder(backend)
    chunk_bytes = 4096
    report = push_weights(trainer, receiver, version=3, chunk_bytes=chunk_bytes)

    assert receiver.calls[0] == "pause" and receiver.calls[-1] == ("resume", 3)
    assert len(receiver.chunks) == report.chunks > 1
    for chunk in receiver.chunks:                          # bounded, or one tensor alone
        assert sum(n for _, n in chunk) <= chunk_bytes or len(chunk) == 1
    sent = [name for chunk in receiver.chunks for name, _ in chunk]
    main = [k for k in trainer.state_dict() if not k.startswith(MTP_PREFIX)]
    assert mtp_before and not any(name.startswith(MTP_PREFIX) for name in sent)
    assert sorted(sent) == sorted(main)
    with torch.no_grad():
        assert torch.equal(rollout_model(IDS).logits, trainer(IDS).logits)          # exactly, fp32
        for k, v in rollout_model.state_dict().items():
            if k.startswith(MTP_PREFIX):
                assert torch.equal(v, mtp_before[k])                               # left as it was
    got = dict(backend.rollouts(PROMPTS, seed=5))
    want = fresh_engine_rollouts(trainer, PROMPTS, 5, 6, 4)
    for i, c in got.items():
        assert c.tokens == want[i].tokens and c.logprobs == want[i].logprobs
        assert c.policy_version == 3


def test_a_request_submitted_during_the_sync_waits_and_runs_on_the_new_weights():
    trainer = small_model()
    backend = EngineRollout(copy.deepcopy(trainer), FakeTokenizer(), max_new_tokens=6, max_batch_size=4)
    trained(trainer)
    during = {}

    def submit_and_step():                                 # a scheduler keeps going meanwhile
        if not during:
            during["rid"] = backend.submit(PROMPTS[0], meta="mid-sync", seed=7)
        during.setdefault("steps", []).append(backend.step())
        during.setdefault("rows", []).append(len(backend.engine.rows))

    push_weights(trainer, Recorder(backend, submit_and_step), version=1, chunk_bytes=4096)
    assert all(s == [] for s in during["steps"]) and set(during["rows"]) == {0}     # none ran
    done = {}
    while not backend.idle():
        done.update(backend.step())
    c = done["mid-sync"]
    assert c.policy_version == 1
    own = EngineRollout(trainer, FakeTokenizer(), max_new_tokens=6, max_batch_size=4)
    own.submit(PROMPTS[0], meta="trainer", seed=7)         # the same request on the trainer's model
    want = {}
    while not own.idle():
        want.update(own.step())
    assert c.tokens == want["trainer"].tokens and c.logprobs == want["trainer"].logprobs


def test_no_sync_while_rollouts_run_and_no_load_outside_a_sync():
    trainer = small_model()
    backend = EngineRollout(copy.deepcopy(trainer), FakeTokenizer(), max_new_tokens=6, max_batch_size=4)
    backend.submit(PROMPTS[1], seed=1)
    backend.step()                                         # started: running under version 0
    with pytest.raises(RuntimeError, match="on-policy"):
        push_weights(trainer, backend, version=1)
    with pytest.raises(RuntimeError, match="pause"):
        backend.load(next(weight_chunks(trainer)))


SCRIPT = """
import sys, torch
sys.path.insert(0, {here!r})
import pretrain_helpers
from mimo_lite.train import parallel
from mimo_lite.rl.weight_sync import weight_chunks
torch.set_num_threads(1)


def main():
    torch.manual_seed(0)
    model = parallel.shard(pretrain_helpers.tiny_model())
    torch.manual_seed(0)
    whole = pretrain_helpers.tiny_model()
    chunks = list(weight_chunks(model, chunk_bytes=8192))
    if parallel.rank() == 0:
        sent = dict(t for c in chunks for t in c)
        want = {{k: v for k, v in whole.state_dict().items() if not k.startswith("model.mtp_layers.")}}
        assert sorted(sent) == sorted(want), (sorted(sent), sorted(want))
        assert all(torch.equal(sent[k], want[k]) for k in want)
        assert len(chunks) > 1
    else:
        assert chunks == []


with parallel.session():
    main()
"""


def test_under_fsdp2_the_whole_tensors_come_out_on_rank_0(tmp_path):
    pretrain_helpers.torchrun_two(tmp_path / "sync.py", SCRIPT.format(here=str(Path(__file__).parent)))


def test_grpo_sends_each_steps_weights_to_a_backend_with_its_own_copy(tmp_path):
    from mimo_lite.profile import RLSection
    from mimo_lite.rl.trainer import train_grpo
    from test_grpo import InlineExecutor, small_token_reward

    problems = [{"id": f"p{i}", "prompt": str(i)} for i in range(8)]
    cfg = RLSection(batch_prompts=2, group_size=4, lr=3e-3, max_new_tokens=3, max_rounds=2,
                    updates_per_step=1, checkpoint_every=50)
    model = small_model()
    backend = EngineRollout(copy.deepcopy(model), FakeTokenizer(), max_new_tokens=3)
    syncs = Recorder(backend)
    train_grpo(model, FakeTokenizer(), problems, cfg, tmp_path / "run", steps=2,
               executor=InlineExecutor(small_token_reward), backend=Streaming(backend, syncs), progress=False)
    assert [c for c in syncs.calls if c != "load"] == ["pause", ("resume", 1), "pause", ("resume", 2)]
    model.eval()
    with torch.no_grad():
        assert torch.equal(backend.model(IDS).logits, model(IDS).logits)


class Streaming:
    """The backend's own calls, with the weight-sync calls going through a Recorder."""

    def __init__(self, backend, recorder):
        self.backend, self.recorder = backend, recorder
        self.pause, self.load, self.resume = recorder.pause, recorder.load, recorder.resume

    def __getattr__(self, name):
        return getattr(self.backend, name)
