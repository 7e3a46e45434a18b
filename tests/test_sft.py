import random
import re

import pytest
import torch

from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.data.sft import clean_sft, light_sft, math_traces, raw_sft_pool
from mimo_lite.profile import SFTSection
from mimo_lite.chat import IM_END
from mimo_lite.tokenizer import ensure_tokenizer
from mimo_lite.train.run import read_metrics
from mimo_lite.train.sft import (IGNORE, Skip, add_lora, encode, pack, prepare, train_sft,
                                 trainable_parameters)


@pytest.fixture(scope="module")
def tok(smoke_runs):
    return ensure_tokenizer("smoke", smoke_runs)


def chat(question, steps, answer):
    return [{"role": "user", "content": question},
            {"role": "assistant", "reasoning_content": steps, "content": answer}]


def conversations(n, seed=0):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randrange(100), rng.randrange(100)
        out.append(chat(f"What is {a} + {b}?", f"{a} + {b} = {a + b}." * rng.randint(1, 3),
                        f"The answer is \\boxed{{{a + b}}}."))
    return out


def tiny_model(vocab_size, seed=0):
    torch.manual_seed(seed)
    return MiMoForCausalLM(preset("smoke", vocab_size=vocab_size, max_position_embeddings=256))


def test_mask_covers_exactly_the_assistant_tokens(tok):
    messages = [{"role": "system", "content": "Be brief."}] + chat("What is 2 + 3?", "2 + 3 = 5.",
                                                                  "\\boxed{5}")
    messages += [{"role": "user", "content": "And 4 + 4?"},
                 {"role": "assistant", "content": "\\boxed{8}"}]
    ids, labels = encode(tok, messages, 512)
    assert len(ids) == len(labels)
    trained = [i for i, l in zip(ids, labels) if l != IGNORE]
    assert all(l in (IGNORE, i) for i, l in zip(ids, labels))
    # exactly the two replies, each through its <|im_end|>, and nothing of the prompts
    assert tok.decode(trained) == ("<think>\n2 + 3 = 5.\n</think>\n\\boxed{5}" + IM_END
                                   + "\\boxed{8}" + IM_END)
    untrained = tok.decode([i for i, l in zip(ids, labels) if l == IGNORE])
    assert "What is 2 + 3?" in untrained and "And 4 + 4?" in untrained and "Be brief." in untrained


def test_packed_rows_give_the_loss_of_conversations_run_one_at_a_time(tok):
    model = tiny_model(len(tok)).eval()
    examples = [encode(tok, m, 256) for m in conversations(7)]
    packed = pack(examples, 256, tok.pad_token_id)
    assert len(packed) < len(examples)                      # several conversations share a row
    out = model(**packed.rows(slice(None)))
    n_main = (packed.labels[:, 1:] != IGNORE).sum().item()
    n_mtp = (packed.labels[:, 2:] != IGNORE).sum().item()
    main_sum = mtp_sum = 0.0
    for ids, labels in examples:
        one = model(torch.tensor([ids]), labels=torch.tensor([labels]))
        main_sum += one.main_loss.item() * sum(l != IGNORE for l in labels[1:])
        mtp_sum += one.mtp_loss.item() * sum(l != IGNORE for l in labels[2:])
    assert out.main_loss.item() == pytest.approx(main_sum / n_main, abs=1e-5)
    assert out.mtp_loss.item() == pytest.approx(mtp_sum / n_mtp, abs=1e-5)


def test_packed_positions_restart_and_attention_stays_inside_a_conversation(tok):
    examples = [encode(tok, m, 256) for m in conversations(3)]
    packed = pack(examples, 256, tok.pad_token_id)
    row = packed.rows(slice(0, 1))
    docs, positions = packed.documents[0], row["position_ids"][0]
    starts = [i for i in range(len(docs)) if docs[i] >= 0 and (i == 0 or docs[i] != docs[i - 1])]
    assert len(starts) == 3 and all(positions[s] == 0 for s in starts)
    mask = row["attention_mask"][0, 0]
    assert not mask[starts[1], starts[1] - 1] and mask[starts[1] + 2, starts[1]]
    assert not mask[starts[2]:, :starts[2]].any()


def test_bad_conversations_are_skipped_counted_and_never_truncated(tok):
    long = chat("What is 1 + 1?", "1 + 1 = 2. " * 200, "\\boxed{2}")
    records = [{"messages": m} for m in conversations(3)] + [
        {"messages": long},
        {"messages": chat("What is 1 + 1?", "", "")},                     # empty reply
        {"messages": [{"role": "user", "content": "hi"}]},               # no reply
        {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]},
        {"text": "not a chat record"},
    ]
    with pytest.warns(UserWarning, match="skipped 5 of 8"):
        examples, skipped = prepare(records, tok, 128)
    assert len(examples) == 3
    assert skipped["longer than the context"] == 1 and skipped["empty assistant turn"] == 1
    assert sum(v for k, v in skipped.items() if k.startswith("malformed")) == 3
    with pytest.raises(Skip, match="longer than the context"):
        encode(tok, long, 128)
    with pytest.raises(ValueError, match="No usable SFT conversation"), pytest.warns(UserWarning):
        prepare(records[3:], tok, 128)


def test_held_out_code_variants_take_their_family_out_unless_only_they_are_removed():
    """A tier-2 family's variants share a long template: the 16-gram rule removes the whole
    family from SFT when one variant is held out; `heldout_code_ids` removes that variant alone."""
    from mimo_lite.tasks.problems import code_problems

    raw = raw_sft_pool(math_per_tier=[4, 0, 0, 0], code_families=9, code_variants=[0, 10],
                       max_candidates=2, incomplete_rate=0.0, seed=0)
    problems = {p["id"]: p for p in code_problems(9, [0, 10], typical_tests=1, every_variant=True)}
    families = {}
    for p in problems.values():
        families.setdefault(p["family"], []).append(p["id"])
    held = [ids[0] for ids in families.values() if len(ids) >= 3]
    assert len(held) >= 3
    math_prompt = next(r["prompt"] for r in raw if r["domain"] == "math")
    eval_prompts = [problems[i]["prompt"] for i in held] + [math_prompt]
    held_families = {problems[i]["family"] for i in held}

    def queries(kept, family):
        return {r["query_id"] for r in kept if r["domain"] == "code" and problems[r["query_id"]]["family"] == family}

    strict, report = clean_sft(raw, eval_prompts)
    assert all(not queries(strict, f) for f in held_families)             # whole families gone
    kept, report = clean_sft(raw, eval_prompts, heldout_code_ids=set(held))
    for family in held_families:
        assert queries(kept, family) == set(families[family]) - set(held)  # all but the held-out one
    assert report["decontamination"]["code_variants_kept"] == sum(len(families[f]) - 1 for f in held_families)
    assert math_prompt not in {r["prompt"] for r in kept}                  # math: the 16-gram rule as before


def test_cleaning_removes_contaminated_incomplete_and_extra_responses():
    raw = raw_sft_pool(math_per_tier=[8, 8, 8, 8], code_families=2, code_variants=[1, 1], max_candidates=12,
                       incomplete_rate=0.3, seed=0)
    eval_prompt = raw[0]["prompt"]
    kept, report = clean_sft(raw, [eval_prompt, "Some unrelated evaluation question?"])
    assert report["decontamination"]["queries_removed"] == 1
    assert eval_prompt not in {r["prompt"] for r in kept}
    assert report["incomplete"]["responses_removed"] > 0
    assert all("\\boxed{" in r["messages"][1]["content"] for r in kept if r["domain"] == "math")
    per_query = {}
    for r in kept:
        per_query[r["query_id"]] = per_query.get(r["query_id"], 0) + 1
    assert max(per_query.values()) <= 8 and report["per_query_cap"]["responses_removed"] > 0
    removed = (report["decontamination"]["responses_removed"] + report["incomplete"]["responses_removed"]
               + report["per_query_cap"]["responses_removed"])
    assert len(kept) == report["raw"]["responses"] - removed
    light = light_sft(kept)
    assert len(light) == len(per_query)
    assert all(r["messages"][1]["reasoning_content"] == "" for r in light)


def test_traces_are_distinct_and_reach_the_answer():
    problem = {"template": "add_two_digit", "prompt": "What is 47 + 38?", "answer": "85",
               "solution": "47 + 38 = 85"}
    traces = math_traces(problem)
    assert len(traces) >= 3 and len({tuple(t) for t in traces}) == len(traces)
    assert all("85" in t[-1] or "85" in " ".join(t) for t in traces)


def small_cfg(**kw):
    return SFTSection(**{**dict(seq_len=128, batch_tokens=256, micro_batch=2, lr=3e-3,
                                total_tokens=10**9, log_every=1, checkpoint_every=2), **kw})


def test_killed_sft_resumes_to_the_same_losses(tok, tmp_path):
    examples = [encode(tok, m, 128) for m in conversations(24)]
    model = tiny_model(len(tok))
    train_sft(model, examples, small_cfg(), tmp_path / "a", tok.pad_token_id, max_steps=6,
              progress=False)
    straight = [m["loss"] for m in read_metrics(tmp_path / "a" / "metrics.jsonl")]
    model = tiny_model(len(tok))
    train_sft(model, examples, small_cfg(), tmp_path / "b", tok.pad_token_id, max_steps=3,
              progress=False)                       # "killed" after step 3 (checkpoint at 2, 3)
    resumed = tiny_model(len(tok), seed=123)        # a fresh process's model: weights come from disk
    train_sft(resumed, examples, small_cfg(), tmp_path / "b", tok.pad_token_id, max_steps=6,
              progress=False)
    again = [m["loss"] for m in read_metrics(tmp_path / "b" / "metrics.jsonl")]
    assert again == straight
    assert straight[-1] < straight[0]


def test_lora_trains_only_adapters_and_merges_exactly(tok, tmp_path):
    examples = [encode(tok, m, 128) for m in conversations(16)]
    base = tiny_model(len(tok))
    before = {k: v.clone() for k, v in base.state_dict().items()}
    model = add_lora(base, small_cfg(lora_rank=4, lora_alpha=8))
    trainable, total = trainable_parameters(model)
    assert 0 < trainable < total / 4
    assert all(("lora_" in n) == p.requires_grad for n, p in model.named_parameters())
    adapters = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    train_sft(model, examples, small_cfg(lr=1e-2), tmp_path, tok.pad_token_id, max_steps=4,
              progress=False)
    for n, p in model.named_parameters():
        if p.requires_grad and "lora_B" in n:
            assert not torch.equal(p, adapters[n]), n                     # adapters moved
    for n, p in model.named_parameters():
        if not p.requires_grad:
            key = n.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(p, before[key]), n                         # the base did not
    ids = torch.tensor([examples[0][0]])
    model.eval()
    with torch.no_grad():
        adapted = model(input_ids=ids, return_mtp=True)
        merged = model.merge_and_unload()
        plain = merged(ids, return_mtp=True)
    assert type(merged) is MiMoForCausalLM
    assert torch.allclose(adapted.logits, plain.logits, atol=1e-5)
    assert torch.allclose(adapted.mtp_logits[0], plain.mtp_logits[0], atol=1e-5)
    assert not torch.allclose(plain.logits, tiny_model(len(tok)).eval()(ids).logits, atol=1e-4)


# ---- the teacher's long chains of thought ------------------------------------------------------

def test_math_traces_plan_check_and_sometimes_catch_a_slip():
    from mimo_lite.tasks.problems import math_problems

    rng = random.Random(0)
    problems = math_problems(20, seed=3)
    traces = {p["id"]: math_traces(p, rng) for p in problems}
    for p in problems:
        for trace in traces[p["id"]]:
            assert trace[0].startswith("Plan:"), trace
    def slipped(p):
        return [t for t in traces[p["id"]] if any(s.startswith("Wait,") for s in t)]
    assert not any(slipped(p) for p in problems if p["tier"] <= 2)
    multi_step = [p for p in problems if p["tier"] >= 3]
    slips = [t for p in multi_step for t in slipped(p)]
    assert len(slips) >= len(multi_step) // 3               # a slipped trace for many multi-step queries
    for trace in slips:                                     # the slip is named, then redone right
        i = next(i for i, s in enumerate(trace) if s.startswith("Wait,"))
        right = trace[i].split(" is ")[1].split(",")[0]
        assert right in trace[i + 1]

    def words(p):
        return max(len(" ".join(t).split()) for t in traces[p["id"]])
    by_tier = {t: sum(words(p) for p in problems if p["tier"] == t) / 20 for t in (1, 2, 3, 4)}
    assert by_tier[1] < by_tier[2] < by_tier[4]             # multi-step problems are worked out
    gcd_problem = next(p for p in problems if p["template"] == "gcd")
    assert any(sum("so the pair becomes" in s for s in t) >= 2 for t in traces[gcd_problem["id"]])


def test_code_traces_reason_before_the_program_and_fix_a_drafted_mistake():
    from mimo_lite.data.sft import code_traces
    from mimo_lite.tasks.problems import code_problems
    from mimo_lite.tasks.sandbox import run_tests

    rng = random.Random(0)
    for p in code_problems(9, [1, 0], 2, seed=0):
        traces = code_traces(p, rng)
        assert len({program for _, program in traces}) >= 2          # several correct programs
        for steps, program in traces:
            assert len(steps) >= 4
            assert all(r.passed for r in run_tests(program, p["tests"]))
        fixes = [steps for steps, _ in traces if any(s.startswith("Wait, that is wrong") for s in steps)]
        assert len(fixes) == 1
        assert any(s.startswith("First draft") for s in fixes[0])
        assert any(s.startswith("Fix it") for s in fixes[0])


def test_sft_pool_gives_code_a_real_share_of_the_replies():
    from collections import Counter

    raw = raw_sft_pool([20, 60, 10, 5], code_families=9, code_variants=[20, 0], max_candidates=12,
                       incomplete_rate=0.1, seed=0)
    kept, _ = clean_sft(raw, eval_prompts=[])

    def chars(domain):
        return sum(len(r["messages"][-1]["reasoning_content"]) + len(r["messages"][-1]["content"])
                   for r in kept if r["domain"] == domain)
    share = chars("code") / (chars("code") + chars("math"))
    assert share > 0.3
    code = [r for r in kept if r["domain"] == "code"]
    assert {r["tier"] for r in code} == {1}
    per_query = Counter(r["query_id"] for r in code)
    assert len(per_query) > 300 and max(per_query.values()) <= 8


def test_every_worked_step_of_the_teacher_is_right_and_multi_step_traces_are_long():
    """The teacher's arithmetic is checked line by line (a slip is allowed only on the line its
    "Wait," names), and tier 4's worked traces run to a few hundred words' worth of steps."""
    from fractions import Fraction

    from mimo_lite.tasks.problems import math_problems

    term = r"-?\d+(?: ?[-+*/] ?-?\d+)*"
    chain = re.compile(rf"{term}(?: = {term})+")

    def value(expression):
        return eval(re.sub(r"\d+", lambda d: f"Fraction({d.group()})", expression), {"Fraction": Fraction})

    rng = random.Random(1)
    problems = math_problems(300, seed=11)
    longest = {}
    for p in problems:
        traces = math_traces(p, rng)
        longest.setdefault(p["tier"], []).append(max(len(" ".join(t).split()) for t in traces))
        for trace in traces:
            slipped = {i - 1 for i, s in enumerate(trace) if s.startswith("Wait,")}
            for i, line in enumerate(trace):
                if i in slipped or line.startswith("Wait,"):
                    continue
                for m in chain.finditer(line):
                    parts = m.group().split(" = ")
                    if re.fullmatch(r"-?\d+", parts[0]):
                        continue                                    # "mod 13 = 5": not arithmetic
                    assert len({value(x) for x in parts}) == 1, (line, p["prompt"])
        assert p["answer"] in " ".join(math_traces(p)[0]).replace("\\frac{", "").replace("}{", "/")
    mean = {t: sum(v) / len(v) for t, v in longest.items()}
    assert mean[4] > 2 * mean[2] and mean[3] > mean[2], mean
    assert max(longest[4]) > 150, max(longest[4])                 # words; tokens run higher
