"""The static-shape decode step that CUDA graphs record (`graphs.py`), run eagerly on the CPU:
the same tokens as the engine's eager step, with rows joining, finishing and padding a bucket."""

import pytest
import torch

from infer_models import one_thread, random_model  # noqa: F401  (one_thread: autouse fixture)
from mimo_lite.infer import Engine, KVCache, SamplingParams, generate
from mimo_lite.infer.fused import FusedDecoder
from mimo_lite.infer.graphs import buckets
from test_infer_engine import PROMPTS, serve
from test_infer_fused import perturbed_model


@torch.inference_mode()
def test_decode_step_equals_the_windowed_forward_and_padding_rows_touch_only_their_own_row():
    """Rows of lengths 5, 9, 2 in a bucket of 4 over a span of 16: the logits of the windowed
    forward, each row's cache columns written at its length, and row 3 (padding) alone in row 3."""
    model = perturbed_model()
    fused = FusedDecoder(model)
    g = torch.Generator().manual_seed(1)
    lengths = [5, 9, 2]
    prompts = [torch.randint(0, 64, (n,), generator=g).tolist() for n in lengths]
    new = torch.tensor([7, 11, 3])
    caches = [KVCache.for_model(model, 4, 24, include_mtp=False) for _ in range(2)]
    for cache in caches:
        for r, p in enumerate(prompts):
            fused.forward(torch.tensor([p]), cache.window(0, len(p), rows=slice(r, r + 1)))
    window = caches[0].window(torch.tensor(lengths), 1, rows=slice(0, 3), span=10)
    expected = fused.logits(fused.forward(new[:, None], window)[:, 0])
    before = caches[1].k[:, 3].clone()
    logits = fused.decode_step(torch.tensor([7, 11, 3, 0]), torch.tensor(lengths + [0]), caches[1], 16)
    torch.testing.assert_close(logits[:3], expected, atol=1e-5, rtol=1e-5)
    for r, n in enumerate(lengths):           # the rows' keys and values, new column included
        torch.testing.assert_close(caches[1].k[:, r, :, :n + 1], caches[0].k[:, r, :, :n + 1])
        torch.testing.assert_close(caches[1].v[:, r, :, :n + 1], caches[0].v[:, r, :, :n + 1])
    changed = (caches[1].k[:, 3] != before).any(-1).any(0).any(0)      # columns of row 3 written
    assert changed.nonzero().flatten().tolist() == [0]


@pytest.mark.parametrize("params", [
    SamplingParams(temperature=0, max_new_tokens=12),
    SamplingParams(temperature=0.9, top_k=20, max_new_tokens=12, seed=3),
], ids=["greedy", "sampled"])
def test_static_decode_gives_the_eager_tokens_as_rows_join_and_finish(params):
    """Eight requests of different lengths and budgets through 5 rows (buckets 1, 2, 4, 5: 3 rows
    pad a bucket of 4), some ending on a stop token, two joining at step 4: the eager engine's
    tokens and log-probs."""
    model = random_model()
    [free] = generate(model, [PROMPTS[0]], SamplingParams(temperature=0, max_new_tokens=12))
    params = SamplingParams(**{**params.__dict__, "stop_token_ids": (free.tokens[5],)})
    requests = {f"r{i}": (p, None) for i, p in enumerate(PROMPTS)}
    late = {"late0": ([7, 7, 1], None), "late1": ([2, 4], None)}
    out = {}
    for mode in ("eager", "static"):
        engine = Engine(model, params, max_batch_size=5, max_length=24, decode=mode)
        if mode == "static":          # count the static steps run and the engine's decode steps
            launches, steps = [], []
            run_step, engine_decode = engine.graphs.decode, engine._decode
            engine.graphs.decode = lambda ids, lengths: launches.append(1) or run_step(ids, lengths)
            engine._decode = lambda finished: steps.append(1) or engine_decode(finished)
        out[mode] = serve(engine, requests, join_at=(4, late))
    # most steps were launched ahead, during the step before; those whose rows changed meanwhile
    # (a row ended or joined) were run again
    assert len(steps) < len(launches) < 2 * len(steps)
    assert {c.finish_reason for c in out["eager"].values()} == {"stop", "length"}
    for name, c in out["eager"].items():
        assert out["static"][name].tokens == c.tokens, name
        assert out["static"][name].logprobs == pytest.approx(c.logprobs, abs=1e-5)


def test_own_seeds_aborts_and_a_span_bucket_crossed_mid_run():
    """Requests with their own streams, one aborted, and prompts of ~60 tokens whose rows grow
    past the 64-column span: the step moves to the 128 bucket without losing a token."""
    model = random_model()
    params = SamplingParams(temperature=0.8, max_new_tokens=10, seed=1)
    g = torch.Generator().manual_seed(0)
    requests = {f"r{i}": (torch.randint(0, 64, (58 + i,), generator=g).tolist(), 50 + i)
                for i in range(5)}
    out = {mode: serve(Engine(model, params, max_batch_size=4, max_length=80, decode=mode), requests,
                       abort_at=(3, {"r1"}))
           for mode in ("eager", "static")}
    assert len(out["eager"]["r1"].tokens) == 3
    for name, c in out["eager"].items():
        assert out["static"][name].tokens == c.tokens, name
        assert out["static"][name].finish_reason == c.finish_reason


def test_reserve_and_a_model_with_a_hook_under_static_decode():
    model = random_model()
    params = SamplingParams(temperature=0, max_new_tokens=8)
    [ref] = generate(model, [[5, 6, 7]], params, decode="eager")
    engine = Engine(model, params, max_batch_size=2, max_length=6, decode="static")
    engine.add_request([5, 6, 7], max_new_tokens=8)
    engine.step()
    engine.reserve(11)                            # a longer cache, borrowed; rows keep their K, V
    engine.add_request([5, 6, 7])
    done = {c.request_id: c for c in engine.run()}
    assert done[0].tokens == ref.tokens[:3] and done[1].tokens == ref.tokens
    # a hook makes the model not plain: it decodes through its modules, eagerly
    handle = model.model.layers[0].mlp.register_forward_hook(lambda m, i, o: o * 0.5)
    try:
        hooked = {mode: generate(model, PROMPTS, params, decode=mode) for mode in ("eager", "static")}
    finally:
        handle.remove()
    assert [c.tokens for c in hooked["static"]] == [c.tokens for c in hooked["eager"]]
    assert [c.tokens for c in hooked["eager"]] != [c.tokens for c in generate(model, PROMPTS, params)]


def test_engines_share_a_cache_only_one_at_a_time():
    model = random_model()
    params = SamplingParams(temperature=0, max_new_tokens=4)
    first = Engine(model, params, max_batch_size=2, max_length=16, decode="static")
    second = Engine(model, params, max_batch_size=2, max_length=16, decode="static")
    assert first.cache is not second.cache                      # both alive: one cache each
    cache = first.cache
    del first
    assert Engine(model, params, max_batch_size=2, max_length=16, decode="static").cache is cache
    assert Engine(model, params, max_batch_size=2, max_length=12, decode="static").cache is not cache


def test_decode_modes_are_checked():
    model = random_model()
    with pytest.raises(ValueError, match='use "static" to run the same static-shape step'):
        Engine(model, SamplingParams(), decode="graphs")
    with pytest.raises(ValueError, match='decode must be "auto", "graphs", "static" or "eager"'):
        Engine(model, SamplingParams(), decode="fast")
    assert Engine(model, SamplingParams(), max_length=8).decode_mode == "eager"      # a CPU: eager
    assert buckets(1, 24) == [1, 2, 4, 8, 16, 24] and buckets(64, 64) == [64]
