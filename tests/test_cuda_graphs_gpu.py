"""CUDA graphs over the engine's decode step (`mimo_lite/infer/graphs.py`) against the eager step.
Skipped on machines without a GPU."""

import sys
import time
from pathlib import Path

import pytest
import torch

from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.infer import Engine, SamplingParams, generate, speculative_generate

sys.path.insert(0, str(Path(__file__).parent))
from infer_models import drafting_model  # noqa: E402
from test_infer_engine import PROMPTS, serve  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def random_prompts(n: int, vocab: int, seed: int = 0) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (int(torch.randint(4, 40, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_graphs_give_the_eager_tokens_in_fp32(temperature):
    """The gpu-size model, random weights, fp32: 40 prompts of 4-39 tokens through 24 rows (rows
    join and finish, buckets 1..24 padded, spans 64 and 128), seeded sampling and greedy."""
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("gpu")).cuda().eval()
    params = SamplingParams(temperature=temperature, max_new_tokens=60, seed=7)
    requests = {i: (p, None) for i, p in enumerate(random_prompts(40, model.config.vocab_size))}
    out = {mode: serve(Engine(model, params, max_batch_size=24, max_length=112, decode=mode), requests)
           for mode in ("eager", "graphs")}
    for i, c in out["eager"].items():
        assert out["graphs"][i].tokens == c.tokens, i
        assert out["graphs"][i].logprobs == pytest.approx(c.logprobs, abs=1e-3)


@torch.inference_mode()
def test_bf16_sequences_part_only_at_near_ties():
    """bf16 rounds the eager (SDPA) and graph (matmul) attention differently, so a near-tie can
    flip a greedy token, and the rest of the sequence follows the flip. The agreement is printed;
    the test checks that every first difference is a near-tie of the model's own full forward."""
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("gpu")).to(device="cuda", dtype=torch.bfloat16).eval()
    params = SamplingParams(temperature=0, max_new_tokens=128)
    prompts = random_prompts(64, model.config.vocab_size, seed=1)
    eager, graphs = ([c.tokens for c in generate(model, prompts, params, decode=mode)]
                     for mode in ("eager", "graphs"))
    parts = [next((i for i, (s, t) in enumerate(zip(a, b)) if s != t), None) for a, b in zip(eager, graphs)]
    gaps = []                                  # full-forward logit of eager's token minus graphs'
    for prompt, a, b, i in zip(prompts, eager, graphs, parts):
        if i is not None:
            logits = model(torch.tensor([prompt + a[:i]], device="cuda")).logits[0, -1].float()
            gaps.append((logits[a[i]] - logits[b[i]]).abs().item())
    same = parts.count(None) / len(parts)
    prefix = sum(len(a) if i is None else i for a, i in zip(eager, parts)) / sum(map(len, eager))
    print(f"\nbf16, gpu size, 64 prompts x 128 greedy tokens, graphs against eager: {same:.2f} of "
          f"sequences identical, {prefix:.2f} of tokens before the first difference; logit gap at "
          f"the first differences: max {max(gaps, default=0):.4f}, median "
          f"{sorted(gaps)[len(gaps) // 2] if gaps else 0:.4f}")
    assert max(gaps, default=0) < 0.1


@pytest.mark.parametrize("num_draft", [1, 2, 3])
def test_speculative_decoding_equals_plain_decoding_with_graphs(num_draft):
    """Each greedy speculative step replayed as one graph (`spec_graphs`): the tokens of plain
    decoding and the acceptance of the eager loop, fp32."""
    model = drafting_model().cuda()
    params = SamplingParams(temperature=0, max_new_tokens=24)
    plain = generate(model, PROMPTS, params, decode="graphs")
    for prompt, c in zip(PROMPTS, plain):
        spec, stats = speculative_generate(model, prompt, params, num_draft=num_draft, step="graphs")
        eager, eager_stats = speculative_generate(model, prompt, params, num_draft=num_draft, step="eager")
        assert spec.tokens == eager.tokens == c.tokens
        assert stats.accepted == eager_stats.accepted


def test_the_next_engine_replays_without_recording():
    """`generate` makes an engine per call; the second call finds the first one's cache and
    graphs in the pool. Prints what the recording cost."""
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("gpu")).to(device="cuda", dtype=torch.bfloat16).eval()
    params = SamplingParams(temperature=0, max_new_tokens=32)
    prompts = random_prompts(1, model.config.vocab_size)
    seconds = []
    for _ in range(3):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        engine = Engine(model, params, max_batch_size=1, max_length=80)
        engine.add_request(prompts[0])
        [c] = list(engine.run())
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
        recorded = dict(engine.graphs.steps)
        del engine
    print(f"\n32 tokens at batch 1: {seconds[0] * 1e3:.1f} ms with recording, then "
          f"{seconds[1] * 1e3:.1f}, {seconds[2] * 1e3:.1f} ms")
    again = Engine(model, params, max_batch_size=1, max_length=80)
    assert again.graphs.steps.keys() == recorded.keys()
    assert all(again.graphs.steps[k][3] is recorded[k][3] for k in recorded)      # the same graphs


def test_graphs_follow_the_weights_through_training_steps():
    """RL decodes, updates the weights, and decodes again: each run records its steps anew over
    the same cache (a new decoder), and must give the tokens of eager decoding with the weights of
    that moment. Four rounds, so that the graphs of one decoder are freed while their logits are
    still held (the pool of the dropped graphs must not be recorded into again); the same for
    the speculative step's graphs."""
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("gpu")).cuda().eval()
    params = SamplingParams(temperature=0, max_new_tokens=40)
    prompts = random_prompts(6, model.config.vocab_size, seed=2)
    held = []
    for round_ in range(4):
        eager = [c.tokens for c in generate(model, prompts, params, decode="eager")]
        graphs = generate(model, prompts, params, decode="graphs")
        assert [c.tokens for c in graphs] == eager, round_
        spec, _ = speculative_generate(model, prompts[0], params, num_draft=1, step="graphs")
        assert spec.tokens == eager[0], round_
        held.append(graphs)
        with torch.no_grad():                  # an optimiser step's worth of change
            for p in model.parameters():
                p.add_(torch.randn_like(p), alpha=1e-2)
