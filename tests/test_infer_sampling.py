import pytest
import torch

from mimo_lite.infer import SamplingParams, probabilities, sample
from mimo_lite.infer.sampling import top_p_cut


@pytest.mark.parametrize("kwargs, message", [
    (dict(top_p=0.0), "top_p must lie in \\(0, 1\\]"),
    (dict(top_p=1.5), "top_p must lie in \\(0, 1\\]"),
    (dict(temperature=-0.5), "temperature must be ≥ 0"),
    (dict(top_k=-1), "top_k must be an integer ≥ 0"),
    (dict(max_new_tokens=0), "max_new_tokens must be a positive integer"),
    (dict(stop_token_ids=[-3]), "stop_token_ids must be token ids"),
    (dict(stop_strings=[""]), "stop_strings must be non-empty strings"),
])
def test_invalid_sampling_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingParams(**kwargs)


def test_top_k_keeps_the_k_most_likely():
    logits = torch.tensor([[3.0, 1.0, 2.0, 0.0, -1.0]])
    p = probabilities(logits, SamplingParams(temperature=1.0, top_k=2))
    assert (p[0] > 0).tolist() == [True, False, True, False, False]
    kept = logits[0, [0, 2]].softmax(-1)
    assert p[0, [0, 2]].tolist() == pytest.approx(kept.tolist())


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log()
    p = probabilities(logits, SamplingParams(top_p=0.8))       # 0.5 + 0.3 reaches 0.8
    assert (p[0] > 0).tolist() == [True, True, False, False]
    p = probabilities(logits, SamplingParams(top_p=0.81))      # needs the third token too
    assert (p[0] > 0).tolist() == [True, True, True, False]
    p = probabilities(logits, SamplingParams(top_p=0.1))       # the top token always stays
    assert p[0].tolist() == [1.0, 0.0, 0.0, 0.0]


def test_temperature_sampling_follows_softmax_over_temperature():
    logits = torch.tensor([1.0, 0.0, -1.0, 0.5]).repeat(20000, 1)
    params = SamplingParams(temperature=0.7, seed=3)
    tokens, logprobs = sample(logits, params, params.generator("cpu"))
    expected = (logits[0] / 0.7).softmax(-1)
    counts = torch.bincount(tokens, minlength=4).float()
    chi2 = ((counts - 20000 * expected) ** 2 / (20000 * expected)).sum().item()
    assert chi2 < 16.3                                        # χ²(3 dof) at p = 0.001
    assert logprobs[:5].tolist() == pytest.approx(expected.log()[tokens[:5]].tolist(), abs=1e-6)


def test_greedy_and_seeded_sampling_are_reproducible():
    logits = torch.randn(8, 50, generator=torch.Generator().manual_seed(0))
    greedy = SamplingParams(temperature=0)
    tokens, logprobs = sample(logits, greedy, None)
    assert tokens.tolist() == logits.argmax(-1).tolist()
    assert logprobs.tolist() == pytest.approx(logits.log_softmax(-1).max(-1).values.tolist())
    params = SamplingParams(temperature=1.0, top_p=0.9, top_k=20, seed=11)
    first, _ = sample(logits, params, params.generator("cpu"))
    again, _ = sample(logits, params, params.generator("cpu"))
    assert first.tolist() == again.tolist()
    p = probabilities(logits, params)
    assert p.sum(-1).tolist() == pytest.approx([1.0] * 8)
    assert ((p > 0).sum(-1) <= 20).all()


def full_sort_cut(z, top_p):
    """The cut by sorting the whole vocabulary, written out as the definition."""
    z_sorted, order = z.sort(dim=-1, descending=True)
    p_sorted = z_sorted.softmax(-1)
    drop = p_sorted.cumsum(-1) - p_sorted >= top_p
    return z.scatter(-1, order, z_sorted.masked_fill(drop, float("-inf")))


@pytest.mark.parametrize("scale", [8.0, 0.05])     # peaked rows, and flat ones needing > 64 candidates
def test_top_p_cut_keeps_what_a_full_sort_keeps(scale):
    g = torch.Generator().manual_seed(3)
    z = torch.randn(32, 2048, generator=g) * scale
    p = z.softmax(-1)
    for top_p in (0.5, 0.9, 0.95, 0.999):
        mine, ref = top_p_cut(z, top_p), full_sort_cut(z, top_p)
        for row, token in (torch.isinf(mine) != torch.isinf(ref)).nonzero().tolist():
            # a token may fall either side only where the mass before it is top_p to float rounding
            before = p[row][p[row] > p[row, token]].sum().item()
            assert abs(before - top_p) < 1e-6, (row, token, before)
        kept = ~torch.isinf(mine) & ~torch.isinf(ref)
        assert torch.equal(mine[kept], ref[kept])
    if scale < 1:                                  # the flat rows did take the fallback
        p_top = z.softmax(-1).topk(64, dim=-1).values.sum(-1)
        assert bool((p_top < 0.5).all())
