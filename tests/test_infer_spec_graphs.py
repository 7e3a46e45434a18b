"""The fixed-shape greedy speculative step (`mimo_lite/infer/spec_graphs.py`) against the eager
loop, on the CPU (`step="static"`: the step a CUDA graph records, run eagerly)."""

import pytest
import torch

from infer_models import drafting_model, markov_batch, one_thread  # noqa: F401
from mimo_lite.infer import SamplingParams, generate, speculative_generate
from mimo_lite.infer import spec_graphs
from mimo_lite.infer.fused import decoder_for


@pytest.mark.parametrize("num_draft", [1, 2, 3])
def test_static_step_gives_the_eager_loops_tokens_and_acceptance(num_draft):
    model = drafting_model(3)
    prompts = markov_batch(torch.Generator().manual_seed(7), 12, 6, 32).tolist()
    params = SamplingParams(temperature=0, max_new_tokens=40)
    plain = generate(model, prompts, params)
    accepted = [0] * num_draft
    for prompt, reference in zip(prompts, plain):
        eager, eager_stats = speculative_generate(model, prompt, params, num_draft=num_draft, step="eager")
        static, stats = speculative_generate(model, prompt, params, num_draft=num_draft, step="static")
        assert static.tokens == eager.tokens == reference.tokens
        assert static.logprobs == pytest.approx(eager.logprobs, abs=1e-4)
        assert (stats.steps, stats.accepted, stats.drafted) == (eager_stats.steps, eager_stats.accepted,
                                                                 eager_stats.drafted)
        assert static.finish_reason == "length"
        accepted = [a + b for a, b in zip(accepted, stats.accepted)]
    assert 0 < accepted[-1] and accepted[0] < sum(len(c.tokens) for c in plain)   # both roll-backs ran


def test_static_step_stops_at_a_stop_token_inside_an_accepted_run():
    model = drafting_model(3)
    prompts = markov_batch(torch.Generator().manual_seed(3), 8, 6, 32).tolist()
    free = SamplingParams(temperature=0, max_new_tokens=30)
    for prompt, reference in zip(prompts, generate(model, prompts, free)):
        stop = reference.tokens[7]                            # a token the reply reaches
        params = SamplingParams(temperature=0, max_new_tokens=30, stop_token_ids=[stop])
        [plain] = generate(model, [prompt], params)
        static, _ = speculative_generate(model, prompt, params, num_draft=3, step="static")
        assert static.tokens == plain.tokens and static.finish_reason == plain.finish_reason == "stop"


def test_a_kept_cache_row_is_reused_and_a_new_snapshot_records_again():
    model = drafting_model(3)
    prompt = markov_batch(torch.Generator().manual_seed(1), 1, 6, 32)[0].tolist()
    params = SamplingParams(temperature=0, max_new_tokens=20)
    first, _ = speculative_generate(model, prompt, params, num_draft=2, step="static")
    spec = spec_graphs.borrow(model, decoder_for(model), 2, len(prompt) + 23, capture=False)
    assert spec.steps                                          # the first call's steps are kept
    again, _ = speculative_generate(model, prompt, params, num_draft=2, step="static")
    assert again.tokens == first.tokens                         # stale columns stay masked
    assert spec_graphs.borrow(model, decoder_for(model), 2, len(prompt) + 23, capture=False) is spec
    spec.use(object())                                          # another decoder: nothing recorded is kept
    assert spec.steps == {}


def test_short_prompts_sampling_and_unknown_step_names():
    model = drafting_model(3)
    params = SamplingParams(temperature=0, max_new_tokens=12)
    short = [5, 16]                                             # fewer than num_draft + 2 tokens: the eager loop
    [plain] = generate(model, [short], params)
    assert speculative_generate(model, short, params, num_draft=3, step="static")[0].tokens == plain.tokens
    sampled = SamplingParams(temperature=0.8, max_new_tokens=12, seed=3)
    a, _ = speculative_generate(model, [5, 16, 17, 20, 29], sampled, step="static")
    b, _ = speculative_generate(model, [5, 16, 17, 20, 29], sampled, step="eager")
    assert a.tokens == b.tokens                                 # sampling always takes the eager loop
    with pytest.raises(ValueError, match="choose auto, graphs, static or eager"):
        speculative_generate(model, short, params, step="fast")
