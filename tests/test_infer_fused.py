"""The generation-time forward (fused weights, folded norms) computes what the model computes,
with the weights the model holds when a generation run starts."""

import pytest
import torch

from infer_models import one_thread  # noqa: F401  (one_thread: autouse fixture)
from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.infer import Engine, KVCache, SamplingParams, generate, speculative_generate
from mimo_lite.infer.fused import FusedDecoder, ModuleDecoder, decoder_for


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
    fused = FusedDecoder(model)
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
    fused = FusedDecoder(model)
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
    fused = FusedDecoder(model)
    ids = torch.randint(0, 64, (1, 8), generator=torch.Generator().manual_seed(3))
    out = model(ids, return_mtp=True)
    cache = KVCache.for_model(model, 1, 16)
    T = 8 - 1
    z, logits = fused.mtp(0, out.hidden_states[:, :T], ids[:, 1:1 + T], 1, cache.window(0, T))
    torch.testing.assert_close(logits[0], out.mtp_logits[0][0, -1], atol=1e-4, rtol=1e-4)
    T -= 1
    _, logits = fused.mtp(1, z[:, :T], ids[:, 2:2 + T], 2, cache.window(0, T))
    torch.testing.assert_close(logits[0], out.mtp_logits[1][0, -1], atol=1e-4, rtol=1e-4)


# --- Fresh weights: after any change, generation equals the model's own forward -------------

PROMPT, NEW = [5, 9, 2, 7], 6


def own_greedy(model) -> tuple[list[int], list[float]]:
    """Greedy decoding by `model(...)` itself over the whole prefix each step: no cache, no fused copy."""
    ids, tokens, logprobs = list(PROMPT), [], []
    with torch.no_grad():
        for _ in range(NEW):
            logp = model(input_ids=torch.tensor([ids])).logits[0, -1].float().log_softmax(-1)
            token = int(logp.argmax())
            tokens.append(token)
            logprobs.append(logp[token].item())
            ids.append(token)
    return tokens, logprobs


def idle_engine(model) -> Engine:
    """An engine that has finished one run: a later run must not reuse the weights of this one."""
    engine = Engine(model, SamplingParams(temperature=0, max_new_tokens=NEW), max_batch_size=1,
                    max_length=len(PROMPT) + NEW)
    engine.add_request(PROMPT)
    list(engine.run())
    return engine


def assert_generation_follows(model, before, engine: Engine | None = None):
    """`generate` (and a run of `engine`, made before the change) equal `own_greedy(model)`, which
    differs from `before`, the decoding before the change (so stale weights would be caught)."""
    tokens, logprobs = own_greedy(model)
    assert tokens != before[0] or logprobs != pytest.approx(before[1], abs=1e-3), "the output did not change"
    completions = []
    if engine is not None:                  # before generate: the engine must see the change itself
        engine.add_request(PROMPT)
        completions += list(engine.run())
    completions += generate(model, [PROMPT], SamplingParams(temperature=0, max_new_tokens=NEW))
    for c in completions:
        assert c.tokens == tokens
        assert c.logprobs == pytest.approx(logprobs, abs=1e-4)


def test_the_fused_copy_is_reused_until_the_weights_change():
    model = perturbed_model(mtp_layers=1)
    first = decoder_for(model)
    assert isinstance(first, FusedDecoder) and decoder_for(model) is first
    with torch.no_grad():
        model.lm_head.weight[0, 0] += 1
    assert decoder_for(model) is not first
    assert isinstance(decoder_for(lora_wrapped(model)), ModuleDecoder)


def test_generation_follows_an_optimizer_step():
    model = perturbed_model(mtp_layers=1)
    before, engine = own_greedy(model), idle_engine(model)
    ids = torch.tensor([PROMPT + before[0]])
    (-model(ids, labels=ids).loss).backward()          # push away from what it generated
    torch.optim.SGD(model.parameters(), lr=1.0).step()
    assert_generation_follows(model, before, engine)


def test_generation_follows_load_state_dict():
    model = perturbed_model(mtp_layers=1)
    before, engine = own_greedy(model), idle_engine(model)
    model.load_state_dict(perturbed_model(mtp_layers=1, seed=1).state_dict())
    assert_generation_follows(model, before, engine)


def lora_wrapped(model):
    """peft LoRA on every projection (as `sft.add_lora`), B made non-zero: peft starts B at 0,
    which would leave the output unchanged."""
    from peft import LoraConfig, get_peft_model
    from mimo_lite.train.sft import LORA_TARGETS

    wrapped = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                               target_modules=LORA_TARGETS, bias="none"))
    with torch.no_grad():
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(name)))
    return wrapped.eval()


def test_a_lora_wrapped_model_generates_through_its_adapters():
    model = perturbed_model(mtp_layers=1)
    before, engine = own_greedy(model), idle_engine(model)
    wrapped = lora_wrapped(model)       # LoRA layers replace the projections of `model` itself
    assert_generation_follows(wrapped, before)
    assert_generation_follows(model, before, engine)
    completion, _ = speculative_generate(wrapped, PROMPT, SamplingParams(temperature=0, max_new_tokens=NEW))
    assert completion.tokens == own_greedy(wrapped)[0]         # MTP drafts through the adapters too


def test_generation_follows_merge_and_unload():
    model = perturbed_model(mtp_layers=1)
    before, engine = own_greedy(model), idle_engine(model)
    merged = lora_wrapped(model).merge_and_unload()   # W += (α/r)·B·A written through `.data`
    assert merged is model
    assert_generation_follows(merged, before, engine)


def test_generation_follows_a_partly_frozen_model():
    """Only one matrix in the middle trains: the first and last parameters (all that a per-step
    check once watched) keep their versions."""
    model = perturbed_model(mtp_layers=1)
    before, engine = own_greedy(model), idle_engine(model)
    model.requires_grad_(False)
    trained = model.model.layers[1].mlp.up_proj.weight.requires_grad_(True)
    optimizer = torch.optim.AdamW([trained], lr=0.5)
    ids = torch.tensor([PROMPT + before[0]])
    (-model(ids, labels=ids).loss).backward()
    optimizer.step()
    assert_generation_follows(model, before, engine)


@pytest.mark.parametrize("edit", ["no_grad add_", ".data.copy_"])
def test_generation_follows_in_place_edits(edit):
    model = perturbed_model(mtp_layers=1)
    before, engine = own_greedy(model), idle_engine(model)
    p = model.model.layers[0].mlp.down_proj.weight
    delta = torch.randn(p.shape, generator=torch.Generator().manual_seed(5))
    if edit == "no_grad add_":
        with torch.no_grad():
            p.add_(delta)
    else:
        p.data.copy_(p.data + delta)                  # .data: invisible to the version counter
    assert_generation_follows(model, before, engine)


def test_generation_follows_a_raised_rope_base():
    """Pre-training stage 3 raises θ in the config, which the model's forward reads."""
    from mimo_lite.train.loop import set_rope_theta

    model = perturbed_model(mtp_layers=1)
    before, engine = own_greedy(model), idle_engine(model)
    set_rope_theta(model, 1.0)
    assert_generation_follows(model, before, engine)


def test_a_forward_hook_is_honoured():
    model = perturbed_model(mtp_layers=1)
    before, engine = own_greedy(model), idle_engine(model)
    model.model.layers[1].mlp.register_forward_hook(lambda module, args, out: -out)
    assert_generation_follows(model, before, engine)


def test_a_run_decodes_with_the_weights_it_started_with():
    """Weights changed while a run decodes apply from the next run: its K/V cache already holds
    the old weights' keys, so switching mid-run would decode with neither model."""
    model = perturbed_model(mtp_layers=1)
    before = own_greedy(model)
    engine = Engine(model, SamplingParams(temperature=0, max_new_tokens=NEW), max_batch_size=1,
                    max_length=len(PROMPT) + NEW)
    engine.add_request(PROMPT)
    engine.step()                                            # prefill: the run has started
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    [c] = list(engine.run())
    assert c.tokens == before[0] and c.logprobs == pytest.approx(before[1], abs=1e-4)
    assert_generation_follows(model, before, engine)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@torch.inference_mode()
def test_fused_forward_on_cuda(dtype):
    """On a GPU the attention goes through SDPA (also at one query per row), in fp32 and bf16."""
    model = perturbed_model().to(device="cuda", dtype=dtype)
    fused = FusedDecoder(model)
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
