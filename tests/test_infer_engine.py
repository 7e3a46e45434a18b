import pytest
import torch

from infer_models import one_thread, random_model  # noqa: F401  (one_thread: autouse fixture)
from mimo_lite.infer import Engine, SamplingParams, generate


class Letters:
    """A tokenizer for stop strings: token i reads as one letter, chr(97 + i mod 26)."""

    def decode(self, ids):
        return "".join(chr(97 + i % 26) for i in ids)


def full_forward_logprobs(model, prompt, tokens, temperature):
    """log softmax(z/τ) of each generated token, from one forward pass over prompt + tokens."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1:-1]
    return (logits / temperature).log_softmax(-1).gather(-1, torch.tensor(tokens)[:, None]).squeeze(-1)


def test_continuous_batching_reports_every_request_once_with_correct_logprobs():
    model = random_model()
    params = SamplingParams(temperature=0.8, top_k=30, max_new_tokens=12, seed=5)
    engine = Engine(model, params, max_batch_size=3, max_length=40)
    g = torch.Generator().manual_seed(2)
    prompts = {}

    def add(n_new):
        for _ in range(n_new):
            prompt = torch.randint(0, 64, (int(torch.randint(1, 9, (1,), generator=g)),),
                                   generator=g).tolist()
            rid = engine.add_request(prompt, max_new_tokens=int(torch.randint(1, 13, (1,), generator=g)))
            prompts[rid] = prompt

    add(4)
    seen, busy_steps = [], 0
    while engine.has_unfinished():
        if engine.steps in (2, 5, 9):            # new requests arrive while others decode
            add(3)
        busy_steps += len(engine.rows) > 0
        for c in engine.step():
            seen.append(c)
            assert c.end_step == engine.steps    # reported in the step it finished
    assert sorted(c.request_id for c in seen) == sorted(prompts)
    assert len(seen) == len(prompts) == 13
    for c in seen:
        assert c.prompt == prompts[c.request_id]
        assert c.finish_reason == "length"
        assert c.end_step - c.start_step == len(c.tokens) - 1   # one token per step from prefill on
        expected = full_forward_logprobs(model, c.prompt, c.tokens, 0.8)
        assert c.logprobs == pytest.approx(expected.tolist(), abs=1e-4)
    # rows were refilled while others decoded: some request started before another ended
    assert any(a.start_step < b.end_step and b.start_step < a.start_step for a in seen for b in seen)


def test_stop_token_stop_string_and_max_tokens():
    model = random_model()
    prompt = [5, 9, 2]
    [free] = generate(model, [prompt], SamplingParams(temperature=0, max_new_tokens=20))
    assert free.finish_reason == "length" and len(free.tokens) == 20
    stop_at = free.tokens[6]
    first = free.tokens.index(stop_at)
    [stopped] = generate(model, [prompt], SamplingParams(temperature=0, max_new_tokens=20,
                                                         stop_token_ids=[stop_at]))
    assert stopped.finish_reason == "stop"
    assert stopped.tokens == free.tokens[:first + 1]

    tokenizer = Letters()
    text = tokenizer.decode(free.tokens)
    target = text[8:10]
    [by_string] = generate(model, [prompt], SamplingParams(temperature=0, max_new_tokens=20,
                                                           stop_strings=[target]), tokenizer=tokenizer)
    assert by_string.finish_reason == "stop"
    assert by_string.text.endswith(target) and by_string.text.count(target) == 1
    assert by_string.tokens == free.tokens[:len(by_string.tokens)]


def test_each_sequence_stops_on_its_own():
    model = random_model()
    prompts = [[1, 2, 3], [4], [7, 7, 7, 7, 7]]
    free = generate(model, prompts, SamplingParams(temperature=0, max_new_tokens=10))
    stop = free[0].tokens[2]
    out = generate(model, prompts, SamplingParams(temperature=0, max_new_tokens=10,
                                                  stop_token_ids=[stop]))
    for f, o in zip(free, out):
        cut = f.tokens.index(stop) + 1 if stop in f.tokens else len(f.tokens)
        assert o.tokens == f.tokens[:cut]
        assert o.finish_reason == ("stop" if stop in f.tokens else "length")


def test_bad_requests_get_a_clear_error():
    model = random_model()
    engine = Engine(model, SamplingParams(max_new_tokens=4), max_batch_size=2, max_length=16)
    with pytest.raises(ValueError, match="leaves no room in a context of 16 tokens"):
        engine.add_request(list(range(16)))
    with pytest.raises(ValueError, match="at least one token"):
        engine.add_request([])
    with pytest.raises(ValueError, match="must lie in \\[0, 64\\)"):
        engine.add_request([3, 64])
    context = model.config.max_position_embeddings
    with pytest.raises(ValueError, match="leaves no room"):
        generate(model, [[1] * context], SamplingParams())
    with pytest.raises(ValueError, match="pass tokenizer="):
        generate(model, [[1]], SamplingParams(stop_strings=["ab"]))


def test_context_limit_ends_with_length():
    model = random_model()
    [c] = generate(model, [[1] * 10], SamplingParams(temperature=0, max_new_tokens=50),
                   max_batch_size=1)
    engine = Engine(model, SamplingParams(temperature=0, max_new_tokens=50), max_length=16)
    engine.add_request([1] * 10)
    [short] = list(engine.run())
    assert short.finish_reason == "length" and len(short.tokens) == 6
    assert short.tokens == c.tokens[:6]
