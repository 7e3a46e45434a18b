import itertools

import pytest
import torch

from infer_models import drafting_model, markov_batch, one_thread, random_model  # noqa: F401
from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.infer import (SamplingParams, SpecStats, accept_drafts, generate,
                             speculative_generate, teacher_forced_acceptance)


@pytest.mark.parametrize("num_draft", [1, 2, 3])
def test_greedy_speculative_equals_greedy_token_for_token(num_draft):
    model = drafting_model(3)
    prompts = markov_batch(torch.Generator().manual_seed(7), 12, 6, 32).tolist()
    params = SamplingParams(temperature=0, max_new_tokens=40)
    plain = generate(model, prompts, params)
    total = SpecStats(num_draft)
    for prompt, reference in zip(prompts, plain):
        c, stats = speculative_generate(model, prompt, params, num_draft=num_draft)
        assert c.tokens == reference.tokens
        assert c.logprobs == pytest.approx(reference.logprobs, abs=1e-4)
        assert c.finish_reason == "length"
        total.steps += stats.steps
        total.accepted = [a + b for a, b in zip(total.accepted, stats.accepted)]
        total.drafted = [a + b for a, b in zip(total.drafted, stats.drafted)]
    # the drafts were neither all right nor all wrong, so both roll-back paths ran
    assert 0.2 < total.acceptance[0] < 0.9
    assert total.accepted[-1] > 0
    assert total.mean_accepted_length == pytest.approx(1 + sum(total.acceptance))


def test_greedy_speculative_stops_like_plain_decoding():
    model = drafting_model(3)
    prompt = markov_batch(torch.Generator().manual_seed(3), 1, 5, 32)[0].tolist()
    [free] = generate(model, [prompt], SamplingParams(temperature=0, max_new_tokens=30))
    stop = free.tokens[9]
    params = SamplingParams(temperature=0, max_new_tokens=30, stop_token_ids=[stop])
    [plain] = generate(model, [prompt], params)
    spec, _ = speculative_generate(model, prompt, params)
    assert spec.tokens == plain.tokens and spec.finish_reason == plain.finish_reason == "stop"
    short, _ = speculative_generate(model, prompt, SamplingParams(temperature=0, max_new_tokens=7))
    assert short.tokens == free.tokens[:7] and short.finish_reason == "length"


def test_acceptance_rule_leaves_the_target_distribution_unchanged():
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([[0.5, 0.2, 0.2, 0.1, 0.0], [0.1, 0.1, 0.1, 0.1, 0.6]])   # main: after x_n, after d_1
    q = torch.tensor([0.1, 0.5, 0.0, 0.2, 0.2])                              # draft
    n = 20000
    drafts = torch.multinomial(q, n, replacement=True, generator=g).tolist()
    first, second = torch.zeros(5), torch.zeros(5)
    for d in drafts:
        a, token = accept_drafts(p, [d], [q], greedy=False, generator=g)
        first[d if a == 1 else token] += 1
        if a == 1:
            second[token] += 1                         # the bonus token comes from p[1]
    for counts, target in ((first, p[0]), (second, p[1])):
        expected = counts.sum() * target
        keep = expected > 0
        assert counts[~keep].sum() == 0
        chi2 = ((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum().item()
        assert chi2 < 18.5                             # χ²(≤ 4 dof) at p = 0.001


def test_speculative_sampling_matches_plain_sampling_distribution():
    """Two MTP drafts from layers that disagree with the main model, 3 sampled tokens: the
    frequency of every 3-token completion must match the main model's exact probability."""
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("smoke", vocab_size=4, num_nextn_predict_layers=2)).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)                 # peaked, and different for main and MTP
    prompt = [1, 3, 0, 2]
    with torch.no_grad():
        exact = {}
        for seq in itertools.product(range(4), repeat=3):
            logits = model(torch.tensor([prompt + list(seq[:2])])).logits[0, -3:]
            exact[seq] = logits.softmax(-1)[[0, 1, 2], list(seq)].prod().item()
    n, counts, stats = 2000, {}, SpecStats(2)
    for i in range(n):
        c, s = speculative_generate(model, prompt, SamplingParams(temperature=1.0, max_new_tokens=3,
                                                                  seed=i))
        counts[tuple(c.tokens)] = counts.get(tuple(c.tokens), 0) + 1
        stats.steps += s.steps
        stats.accepted = [a + b for a, b in zip(stats.accepted, s.accepted)]
    assert 0.2 < stats.acceptance[0] < 0.95            # drafts both pass and fail
    cells = [seq for seq in exact if exact[seq] * n >= 5]       # χ² needs expected counts ≥ 5
    rare = sum(counts.get(seq, 0) for seq in exact if seq not in cells)
    observed = [counts.get(seq, 0) for seq in cells] + [rare]
    expected = [exact[seq] * n for seq in cells] + [n - sum(exact[seq] * n for seq in cells)]
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected) if e > 0)
    dof = len(cells)
    assert chi2 < dof + 4 * (2 * dof) ** 0.5           # far inside χ²(dof)'s upper tail


def test_teacher_forced_acceptance_agrees_with_live_drafting():
    model = drafting_model(1)
    prompts = markov_batch(torch.Generator().manual_seed(5), 8, 6, 32).tolist()
    params = SamplingParams(temperature=0, max_new_tokens=40)
    outputs = generate(model, prompts, params)
    [offline] = teacher_forced_acceptance(model, prompts, [c.tokens for c in outputs])
    live = SpecStats(1)
    for prompt in prompts:
        _, s = speculative_generate(model, prompt, params)
        live.steps += s.steps
        live.accepted[0] += s.accepted[0]
        live.drafted[0] += s.drafted[0]
    assert live.conditional_acceptance[0] == pytest.approx(offline, abs=0.1)


def test_too_many_drafts_or_no_mtp_layer_is_refused():
    with pytest.raises(ValueError, match="extend_mtp_layers"):
        speculative_generate(random_model(), [1, 2], SamplingParams(), num_draft=2)
    with pytest.raises(ValueError, match="no MTP layer"):
        speculative_generate(random_model(mtp_layers=0), [1, 2], SamplingParams())
    with pytest.raises(ValueError, match="must hold 1 to"):
        speculative_generate(random_model(), [], SamplingParams())


def test_step_costs_time_each_pass_and_combine_into_a_speedup():
    from mimo_lite.infer import StepCosts, step_costs

    model = drafting_model(3)
    prompt = markov_batch(torch.Generator().manual_seed(1), 1, 6, 32)[0].tolist()
    costs = step_costs(model, prompt, num_draft=2, repeats=3)
    assert costs.num_draft == 2 and min(costs.main, costs.verify, costs.draft) > 0
    # the formula: tokens per pass × plain step time / speculative step time
    c = StepCosts(1, main=1.0, verify=1.0, draft=0.1)
    assert c.speedup(1.9) == pytest.approx(1.9 / 1.1)
    assert c.speedup(1.9, loop=0.9) == pytest.approx(1.9 / 2.0)
    with pytest.raises(ValueError, match="MTP layers"):
        step_costs(model, prompt, num_draft=4)


def test_batch_one_timings_time_both_decoders_on_each_prompt_and_give_the_speedup():
    from mimo_lite.eval.intervals import bootstrap
    from mimo_lite.infer import batch_one_speedup, batch_one_timings

    model = drafting_model(3)
    prompts = markov_batch(torch.Generator().manual_seed(2), 5, 6, 32).tolist()
    params = SamplingParams(temperature=0, max_new_tokens=12)
    rows = batch_one_timings(model, prompts, params, num_draft=2, repeats=2)
    assert len(rows) == 5 and all(r["plain_s"] > 0 and r["spec_s"] > 0 for r in rows)
    # greedy: the same tokens both ways, each prompt's twice (two rounds)
    assert [r["plain_tokens"] for r in rows] == [r["spec_tokens"] for r in rows] == [24] * 5
    by_hand = sum(r["plain_s"] for r in rows) / sum(r["spec_s"] for r in rows)
    assert batch_one_speedup(rows) == pytest.approx(by_hand)
    made = [dict(plain_s=2.0, spec_s=1.0, plain_tokens=10, spec_tokens=10),
            dict(plain_s=1.0, spec_s=1.0, plain_tokens=10, spec_tokens=5)]
    assert batch_one_speedup(made) == pytest.approx((15 / 2) / (20 / 3))
    assert batch_one_speedup([]) != batch_one_speedup([])                # nan
    speed = bootstrap(rows, batch_one_speedup)
    assert speed["low"] <= speed["estimate"] <= speed["high"]


def test_weights_read_ratio_of_mimo_7b_is_one_mtp_layer_beside_36_blocks():
    from mimo_lite.infer import weights_read_ratio

    mimo = preset("mimo_7b")
    ratio = weights_read_ratio(mimo)
    # one MTP layer (210,790,400 parameters, facts §1.2) + lm_head (151,680 × 4,096), over 36
    # blocks + lm_head: total 7,833,409,536 less the MTP layer, the embedding and the final norm
    head = 151_680 * 4_096
    main = 7_833_409_536 - 210_790_400 - head - 4_096
    assert ratio == pytest.approx((210_790_400 + head) / main)
    assert weights_read_ratio(preset("toy")) > 3 * ratio          # a few blocks: drafting is dear
    assert weights_read_ratio(preset("mimo_7b", num_nextn_predict_layers=3), 3) == pytest.approx(3 * ratio)
