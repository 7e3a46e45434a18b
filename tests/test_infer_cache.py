import pytest
import torch

from infer_models import one_thread, random_model  # noqa: F401  (one_thread: autouse fixture)
from mimo_lite import preset
from mimo_lite.infer import KVCache, SamplingParams, generate, kv_bytes_per_token


def full_recompute_greedy(model, prompt, n):
    """Greedy decoding with no cache: a full forward over the whole prefix for every token."""
    ids, logprobs = list(prompt), []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids])).logits[0, -1]
            token = logits.argmax().item()
            logprobs.append(logits.log_softmax(-1)[token].item())
            ids.append(token)
    return ids[len(prompt):], logprobs


def test_kv_cache_decoding_equals_full_recomputation():
    model = random_model()
    g = torch.Generator().manual_seed(0)
    for length in (1, 4, 9):
        prompt = torch.randint(0, 64, (length,), generator=g).tolist()
        [c] = generate(model, [prompt], SamplingParams(temperature=0, max_new_tokens=12))
        tokens, logprobs = full_recompute_greedy(model, prompt, 12)
        assert c.tokens == tokens
        assert c.logprobs == pytest.approx(logprobs, abs=1e-5)


def test_batched_prompts_of_different_lengths_equal_one_by_one():
    model = random_model()
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, 64, (n,), generator=g).tolist() for n in (3, 11, 1, 7, 5)]
    params = SamplingParams(temperature=0, max_new_tokens=15)
    batched = generate(model, prompts, params)
    for prompt, c in zip(prompts, batched):
        [alone] = generate(model, [prompt], params)
        assert c.prompt == prompt
        assert c.tokens == alone.tokens
        assert c.logprobs == pytest.approx(alone.logprobs, abs=1e-5)


def test_window_writes_each_row_at_its_own_length():
    cache = KVCache(num_layers=1, batch_size=2, max_length=8, num_kv_heads=1, head_dim=2,
                    dtype=torch.float32, device="cpu")
    window = cache.window(torch.tensor([2, 5]), 1, span=6)
    new = torch.tensor([[[[1.0, 1.0]]], [[[2.0, 2.0]]]])          # (B=2, K=1, T=1, d=2)
    keys, _ = window.update(new, new, layer_idx=0)
    assert keys.shape == (2, 1, 6, 2)
    assert cache.k[0, 0, 0, 2].tolist() == [1.0, 1.0] and cache.k[0, 1, 0, 5].tolist() == [2.0, 2.0]
    assert cache.k[0, 0, 0, 5].tolist() == [0.0, 0.0]
    # row 0 (length 2) sees columns 0..2, row 1 (length 5) sees 0..5
    assert window.attention_mask[:, 0, 0].tolist() == [[True] * 3 + [False] * 3, [True] * 6]
    assert window.position_ids.tolist() == [[2], [5]]


def test_window_past_the_cache_is_refused():
    cache = KVCache(1, 1, 4, 1, 2, dtype=torch.float32, device="cpu")
    with pytest.raises(ValueError, match="allocate a longer cache"):
        cache.window(3, 2)


def test_kv_bytes_per_token_for_mimo_7b():
    config = preset("mimo_7b")
    # 2 (K, V) × 36 layers × 8 KV heads × 128 head_dim × 2 bytes (bf16), facts file §1.1
    assert kv_bytes_per_token(config, 2, include_mtp=False) == 2 * 36 * 8 * 128 * 2
    assert kv_bytes_per_token(config, 2) == 2 * 37 * 8 * 128 * 2
