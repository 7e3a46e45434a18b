import pytest
import torch

from infer_models import one_thread, random_model  # noqa: F401  (one_thread: autouse fixture)
from mimo_lite.infer import Engine, SamplingParams, generate, probabilities


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


# ---- requests that join, leave early, and the policy that produced them -------------------------

PROMPTS = [[3, 1, 4], [1, 5], [9, 2, 6, 5], [3, 5, 8, 9, 7], [9], [3, 2, 3, 8]]


def serve(engine, requests, abort_at=None, join_at=None):
    """Run `requests` {name: (prompt, seed)} to the end; at step `abort_at[0]` abort the names in
    abort_at[1], at step `join_at[0]` add the requests join_at[1]. Returns {name: completion}."""
    ids = {}

    def add(batch):
        for name, (prompt, seed) in batch.items():
            ids[engine.add_request(prompt, seed=seed)] = name

    add(requests)
    out = {}
    while engine.has_unfinished():
        if abort_at and engine.steps == abort_at[0]:
            rows_before = len(engine.rows)
            aborted = engine.abort([i for i, n in ids.items() if n in abort_at[1]])
            running = [c for c in aborted if c.start_step is not None]
            assert len(engine.rows) == rows_before - len(running)       # their rows are free
            out.update((ids[c.request_id], c) for c in aborted)
        if join_at and engine.steps == join_at[0]:
            add(join_at[1])
        out.update((ids[c.request_id], c) for c in engine.step())
    return out


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_aborted_requests_free_their_rows_and_leave_the_others_unchanged(temperature):
    model = random_model()
    params = SamplingParams(temperature=temperature, max_new_tokens=10, seed=3)
    requests = {f"r{i}": (p, 100 + i) for i, p in enumerate(PROMPTS)}      # each its own stream
    late = {"late0": ([7, 7, 1], 200), "late1": ([2, 4], 201)}
    aborted = {"r1", "r3", "r5"}                                           # r5 is still waiting
    engine = Engine(model, params, max_batch_size=4, max_length=24)
    out = serve(engine, requests, abort_at=(4, aborted), join_at=(4, late))
    for name in aborted:
        c = out[name]
        assert c.finish_reason == "abort" and c.end_step == 4
        if name == "r5":
            assert c.tokens == [] and c.start_step is None and c.policy_version is None
        else:   # the tokens it had after 4 steps: one from prefill (step 1), one from each of 2-4
            assert len(c.tokens) == len(c.logprobs) == 4
            expected = full_forward_logprobs(model, c.prompt, c.tokens, temperature or 1.0)
            assert c.logprobs == pytest.approx(expected.tolist(), abs=1e-4)
    # the two freed rows went at once to the next waiting requests: r4, then the first late one
    assert out["r4"].start_step == out["late0"].start_step == 5 < out["late1"].start_step
    # the same requests without the aborted ones, and the late ones alone, on fresh engines
    alone = serve(Engine(model, params, max_batch_size=4, max_length=24),
                  {n: r for n, r in requests.items() if n not in aborted})
    alone.update(serve(Engine(model, params, max_batch_size=2, max_length=24), late))
    for name, c in alone.items():
        assert out[name].tokens == c.tokens, name
        assert out[name].logprobs == pytest.approx(c.logprobs, abs=1e-5)
        assert out[name].finish_reason == c.finish_reason == "length"


def test_requests_with_their_own_seed_sample_the_right_distribution():
    """Own streams sample by inverse CDF: truncated tokens never, the others at their probability."""
    model = random_model()
    params = SamplingParams(temperature=0.7, top_k=5, max_new_tokens=1)
    n = 600
    engine = Engine(model, params, max_batch_size=n, max_length=4)
    for seed in range(n):
        engine.add_request([4, 2], seed=seed)
    tokens = torch.tensor([c.tokens[0] for c in engine.run()])
    with torch.no_grad():
        p = probabilities(model(torch.tensor([[4, 2]])).logits[:, -1], params)[0]
    frequency = torch.bincount(tokens, minlength=p.shape[0]).float() / n
    assert (frequency[p == 0] == 0).all()
    assert (frequency - p).abs().max() < 4 * (0.25 / n) ** 0.5        # 4 standard deviations at most


def test_the_shared_stream_is_unchanged_without_per_request_seeds():
    """Requests without a seed draw, as before, from one stream seeded by SamplingParams.seed."""
    model = random_model()
    params = SamplingParams(temperature=1.0, max_new_tokens=6, seed=11)
    first, again = (generate(model, PROMPTS, params) for _ in range(2))
    assert [c.tokens for c in first] == [c.tokens for c in again]
    g = torch.Generator().manual_seed(11)
    engine = Engine(model, params, max_batch_size=1, max_length=16)
    engine.add_request(PROMPTS[0])
    [c] = list(engine.run())
    # batch of one: the engine's draws are torch.multinomial's on the shared generator
    with torch.no_grad():
        ids = list(PROMPTS[0])
        for token in c.tokens:
            logits = model(torch.tensor([ids])).logits[:, -1]
            assert torch.multinomial(probabilities(logits, params), 1, generator=g).item() == token
            ids.append(token)


def test_policy_version_is_stamped_and_changes_only_while_idle():
    model = random_model()
    engine = Engine(model, SamplingParams(temperature=0, max_new_tokens=4), max_batch_size=2,
                    max_length=16)
    engine.add_request([1, 2])
    engine.step()
    with pytest.raises(RuntimeError, match="while 1 requests are running under version 0"):
        engine.set_policy(1)
    [old] = list(engine.run())
    assert old.policy_version == 0
    engine.add_request([3])              # waiting, not yet started: it will run under the new version
    engine.set_policy(1)
    [new] = list(engine.run())
    assert new.policy_version == 1
    engine.add_request([4, 5])
    engine.step()
    [stopped] = engine.abort([2])
    assert stopped.policy_version == 1 and stopped.finish_reason == "abort"
    engine.set_policy(2)                 # aborting the last running request made the engine idle
    assert engine.abort([0, 99]) == []   # finished or unknown ids are skipped


def test_reserve_grows_the_cache_under_running_requests():
    model = random_model()
    params = SamplingParams(temperature=0, max_new_tokens=8)
    [ref] = generate(model, [[5, 6, 7]], params)
    engine = Engine(model, params, max_batch_size=2, max_length=6)
    engine.add_request([5, 6, 7], max_new_tokens=8)      # capped to 3 tokens by this cache
    engine.step()
    engine.reserve(11)                                    # rows in flight keep their keys and values
    engine.add_request([5, 6, 7])
    done = {c.request_id: c for c in engine.run()}
    assert done[0].tokens == ref.tokens[:3] and done[1].tokens == ref.tokens
    with pytest.raises(ValueError, match="do not fit the model's context"):
        engine.reserve(model.config.max_position_embeddings + 1)
