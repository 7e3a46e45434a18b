"""The generation-time forward (fused weights, folded norms) computes what the model computes."""

import pytest
import torch

from infer_models import one_thread  # noqa: F401  (one_thread: autouse fixture)
from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.infer import KVCache, SamplingParams, generate
from mimo_lite.infer.fused import FusedDecoder


def perturbed_model(mtp_layers: int = 2, seed: int = 0) -> MiMoForCausalLM:
    """A smoke-size model whose norm weights and biases are far from their init (1 and 0), so
    folding them into the matrices is actually exercised."""
    torch.manual_seed(seed)
    model = MiMoForCausalLM(preset("smoke", vocab_size=64, num_nextn_predict_layers=mtp_layers)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.copy_(torch.rand_like(p) + 0.5 if "norm" in name else torch.randn_like(p) * 0.1)
            else:
                p.mul_(8)        # larger weights: logits far from uniform, a sharper test
    return model


@torch.inference_mode()
def test_prefill_then_decode_equals_the_model_forward():
    model = perturbed_model()
    fused = FusedDecoder.of(model)
    ids = torch.randint(0, 64, (3, 9), generator=torch.Generator().manual_seed(1))
    full = model(ids)
    cache = KVCache.for_model(model, 3, 16)
    h = fused.forward(ids[:, :6], cache.window(0, 6))                           # prefill, causal
    for t in range(6, 9):                                                       # then one at a time
        h = torch.cat([h, fused.forward(ids[:, t:t + 1], cache.window(t, 1))], dim=1)
    torch.testing.assert_close(h, full.hidden_states, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fused.logits(h.reshape(-1, h.shape[-1])),
                               full.logits.reshape(-1, 64), atol=1e-4, rtol=1e-4)


@torch.inference_mode()
def test_several_new_tokens_after_a_prefix_and_rows_of_different_lengths():
    model = perturbed_model()
    fused = FusedDecoder.of(model)
    ids = torch.randint(0, 64, (2, 10), generator=torch.Generator().manual_seed(2))
    full = model(ids).hidden_states
    cache = KVCache.for_model(model, 2, 16)
    fused.forward(ids[:, :4], cache.window(0, 4))
    h = fused.forward(ids[:, 4:7], cache.window(4, 3))                          # T > 1 after a prefix
    torch.testing.assert_close(h, full[:, 4:7], atol=1e-5, rtol=1e-4)
    # row 0 at length 7, row 1 rolled back to length 5: per-row positions and masks
    h = fused.forward(torch.stack([ids[0, 7:8], ids[1, 5:6]]), cache.window(torch.tensor([7, 5]), 1, span=8))
    torch.testing.assert_close(h[0, 0], full[0, 7], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(h[1, 0], full[1, 5], atol=1e-5, rtol=1e-4)


@torch.inference_mode()
def test_mtp_layers_equal_the_training_time_chain():
    model = perturbed_model(mtp_layers=2)
    fused = FusedDecoder.of(model)
    ids = torch.randint(0, 64, (1, 8), generator=torch.Generator().manual_seed(3))
    out = model(ids, return_mtp=True)
    cache = KVCache.for_model(model, 1, 16)
    T = 8 - 1
    z, logits = fused.mtp(0, out.hidden_states[:, :T], ids[:, 1:1 + T], 1, cache.window(0, T))
    torch.testing.assert_close(logits[0], out.mtp_logits[0][0, -1], atol=1e-4, rtol=1e-4)
    T -= 1
    _, logits = fused.mtp(1, z[:, :T], ids[:, 2:2 + T], 2, cache.window(0, T))
    torch.testing.assert_close(logits[0], out.mtp_logits[1][0, -1], atol=1e-4, rtol=1e-4)


def test_generation_follows_weights_changed_in_place():
    """An optimiser step between two generate calls: the second must use the new weights."""
    model = perturbed_model(mtp_layers=1)
    params = SamplingParams(temperature=0, max_new_tokens=6)
    prompt = [5, 9, 2]
    before = generate(model, [prompt], params)[0]
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    loss = model(torch.tensor([prompt + before.tokens]), labels=torch.tensor([prompt + before.tokens])).loss
    (-loss).backward()                                   # push away from what it generated
    optimizer.step()
    after = generate(model, [prompt], params)[0]
    with torch.no_grad():
        logits = model(torch.tensor([prompt])).logits[0, -1]
    assert after.tokens[0] == logits.argmax().item()
    assert after.logprobs[0] == pytest.approx(logits.log_softmax(-1).max().item(), abs=1e-5)
    assert after.tokens != before.tokens


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@torch.inference_mode()
def test_fused_forward_on_cuda(dtype):
    """On a GPU the attention goes through SDPA (also at one query per row), in fp32 and bf16."""
    model = perturbed_model().to(device="cuda", dtype=dtype)
    fused = FusedDecoder.of(model)
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(4)).cuda()
    full = model(ids).logits
    cache = KVCache.for_model(model, 2, 16)
    h = fused.forward(ids[:, :6], cache.window(0, 6))
    for t in range(6, 9):
        h = torch.cat([h, fused.forward(ids[:, t:t + 1], cache.window(t, 1))], dim=1)
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == torch.float32 else dict(atol=0.15, rtol=0.05)
    torch.testing.assert_close(fused.logits(h.reshape(-1, h.shape[-1])).float(),
                               full.reshape(-1, 64).float(), **tol)
    [c] = generate(model, [ids[0].tolist()], SamplingParams(temperature=0, max_new_tokens=8))
    assert len(c.tokens) == 8 and all(0 <= t < 64 for t in c.tokens)
