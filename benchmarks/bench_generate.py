"""mimo-lite generation against transformers' `generate`, and speculative against plain decoding.

Same weights, same prompts, same process; the methods take turns within each repeat so that a
busy machine slows them alike; each figure is the best of the repeats (as timeit reports), the
least disturbed measurement of what the code itself costs.

    python benchmarks/bench_generate.py                                  # CPU, toy size
    python benchmarks/bench_generate.py --device cuda --size gpu         # one GPU

The model is the profile's base model (notebook 04, built if missing), or with `--model sft` the
full SFT model (notebook 06), whose replies follow the long-CoT traces; the prompts are math
problems of the RL suite in the chat template, so the speculative part drafts the model's own
reasoning. Goals (toy, CPU): ≥ 3× transformers at batch 1; speculative ≥ 1.3× plain at batch 1
with first-layer acceptance ≥ 0.8. Goals (one GPU, gpu size, bf16): the kit with CUDA graphs
≥ 1.5× transformers' static-cache `generate` at batch 1, ≥ 2× transformers' best at batch 64.

On CUDA the kit runs twice, with CUDA graphs (its default there) and eagerly, and transformers
also with `cache_implementation="static"`, which its `generate` compiles (the warm-up call pays
for the compilation). The speculative part compares `speculative_generate` (eager) with plain
`generate` (with CUDA graphs on CUDA).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mimo_lite.infer import (SamplingParams, SpecStats, completion_batches,  # noqa: E402
                             extend_mtp_layers, finetune_new_mtp_layers, generate,
                             speculative_generate)
from mimo_lite.model import qwen2_twin  # noqa: E402
from mimo_lite.profile import load_profile  # noqa: E402
from mimo_lite.tasks.problems import math_problems  # noqa: E402
from mimo_lite.model import MiMoForCausalLM  # noqa: E402
from mimo_lite.train import ensure_base_model, ensure_sft_model  # noqa: E402


def chat_prompts(tokenizer, n: int, seed: int) -> list[list[int]]:
    """n math problems of the RL suite in the chat template, as token ids."""
    problems = random.Random(seed).sample(math_problems(per_tier=n, seed=seed), n)
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p["prompt"]}], tokenize=False,
                                           add_generation_prompt=True) for p in problems]
    return [tokenizer.encode(t, add_special_tokens=False) for t in texts]


def equal_length(prompts: list[list[int]], n: int) -> list[list[int]]:
    """n prompts of one common length, so that transformers' `generate` needs no padding."""
    by_length: dict[int, list] = {}
    for p in prompts:
        by_length.setdefault(len(p), []).append(p)
    group = max(by_length.values(), key=len)
    return (group * n)[:n]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def throughput(model, prompts, new_tokens, repeats, device):
    """tok/s of the kit and of transformers' generate, every sequence exactly `new_tokens` long,
    and each method's tokens. On CUDA the kit runs with and without CUDA graphs, and
    transformers also with its static cache (which `generate` compiles)."""
    twin = qwen2_twin(model)
    ids = torch.tensor(prompts, device=device)
    params = SamplingParams(temperature=0, max_new_tokens=new_tokens)
    hf = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
              eos_token_id=None, pad_token_id=0)
    methods = {"mimo-lite eager": lambda: [c.tokens for c in generate(model, prompts, params,
                                                                      decode="eager")]}
    if device.type == "cuda":
        methods["mimo-lite graphs"] = lambda: [c.tokens for c in generate(model, prompts, params,
                                                                          decode="graphs")]
    methods["transformers MiMo class"] = lambda: model.generate(ids, **hf)[:, ids.shape[1]:].tolist()
    methods["transformers Qwen2 class"] = lambda: twin.generate(ids, **hf)[:, ids.shape[1]:].tolist()
    if device.type == "cuda":
        methods["transformers Qwen2 class, static cache"] = lambda: twin.generate(
            ids, cache_implementation="static", **hf)[:, ids.shape[1]:].tolist()
    times = {name: [] for name in methods}
    outputs = {}
    with torch.inference_mode():
        for name, fn in methods.items():                       # warm-up (and compilation)
            outputs[name] = fn()
        for _ in range(repeats):
            for name, fn in methods.items():
                times[name].append(timed(fn, device)[1])
    n = len(prompts) * new_tokens
    rates = {name: n / min(t) for name, t in times.items()}
    return rates, outputs


def agreement(a: list[list[int]], b: list[list[int]]) -> tuple[float, float]:
    """(share of sequences identical, mean share of each sequence before its first difference)."""
    def prefix(x, y):
        return next((i for i, (s, t) in enumerate(zip(x, y)) if s != t), min(len(x), len(y)))
    same = sum(x == y for x, y in zip(a, b)) / len(a)
    return same, sum(prefix(x, y) / max(len(x), 1) for x, y in zip(a, b)) / len(a)


def speculative(model, prompts, eos, max_new, num_draft, repeats, device):
    """Batch 1 on reasoning outputs: plain `generate` and `speculative_generate`, taking turns."""
    params = SamplingParams(temperature=0, max_new_tokens=max_new, stop_token_ids=[eos])
    stats, same, tokens = SpecStats(num_draft), True, 0
    plain_s, spec_s = [], []
    generate(model, prompts[:1], params)
    speculative_generate(model, prompts[0], params, num_draft=num_draft)      # warm-up
    for r in range(repeats):
        p_total = s_total = 0.0
        for prompt in prompts:
            [plain], t = timed(lambda: generate(model, [prompt], params), device)
            p_total += t
            (spec, s), t = timed(lambda: speculative_generate(model, prompt, params, num_draft), device)
            s_total += t
            if r == 0:
                same &= spec.tokens == plain.tokens
                tokens += len(plain.tokens)
                stats.steps += s.steps
                stats.accepted = [a + b for a, b in zip(stats.accepted, s.accepted)]
                stats.drafted = [a + b for a, b in zip(stats.drafted, s.drafted)]
        plain_s.append(p_total)
        spec_s.append(s_total)
    return tokens / min(plain_s), tokens / min(spec_s), stats, same


def throughput_table(model, prompts_for, args, device):
    """One markdown row per batch size: the kit against transformers' generate. The agreement is
    with the kit's eager tokens: (identical sequences, mean share before the first difference)."""
    names = ["mimo-lite eager", "mimo-lite graphs", "transformers MiMo class",
             "transformers Qwen2 class", "transformers Qwen2 class, static cache"]
    if device.type != "cuda":
        names = [n for n in names if n not in ("mimo-lite graphs", "transformers Qwen2 class, static cache")]
    print("\n| batch | " + " | ".join(f"{n} tok/s" for n in names) +
          " | kit / best transformers | agreement with kit eager (" + ", ".join(names[1:]) + ") |")
    print("|---|" + "---|" * (len(names) + 2))
    for b in args.batch:
        rates, outputs = throughput(model, prompts_for(b), args.new_tokens, args.repeats, device)
        kit = max(rates[n] for n in names if n.startswith("mimo-lite"))
        best_hf = max(rates[n] for n in names if n.startswith("transformers"))
        agree = ", ".join("{:.2f} / {:.2f}".format(*agreement(outputs[n], outputs["mimo-lite eager"]))
                          for n in names[1:])
        print(f"| {b} | " + " | ".join(f"{rates[n]:,.0f}" for n in names) +
              f" | {kit / best_hf:.2f}× | {agree} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="toy", help="profile whose model to use: smoke, toy, gpu")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="default: float32 on CPU, bfloat16 on CUDA")
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--spec-prompts", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: the profile's `threads`)")
    parser.add_argument("--mtp-layers", type=int, default=3,
                        help="also extend to this many MTP layers, fine-tune the copies, and time them")
    parser.add_argument("--runs", default=None, help="root of runs/ (where the base model is kept)")
    parser.add_argument("--untrained", action="store_true",
                        help="random weights of the profile's size and random 16-token prompts: "
                             "throughput only, without building a corpus or pre-training (the speculative part is skipped)")
    parser.add_argument("--model", default="base", choices=["base", "sft"],
                        help="the base model of notebook 04 or the full SFT model of notebook 06, "
                             "whose reasoning follows the long-CoT traces")
    args = parser.parse_args()
    profile = load_profile(args.size)
    profile.use_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype or ("bfloat16" if device.type == "cuda" else "float32"))

    if args.untrained:
        torch.manual_seed(profile.seed)
        model = MiMoForCausalLM(profile.model.config()).to(device=device, dtype=dtype).eval()
        g = torch.Generator().manual_seed(profile.seed)
        prompts = torch.randint(0, model.config.vocab_size, (max(args.batch), 16), generator=g).tolist()
        print(f"\n{args.size} untrained model, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M "
              f"parameters, {device} {dtype}, {torch.get_num_threads()} threads, torch {torch.__version__}")
        throughput_table(model, lambda b: prompts[:b], args, device)
        return

    model, tokenizer = ensure_base_model(profile, args.runs)
    if args.model == "sft":
        folder = ensure_sft_model(profile, args.runs, "full")
        model = MiMoForCausalLM.from_pretrained(folder)
    model = model.to(device=device, dtype=dtype).eval()
    pool = chat_prompts(tokenizer, 256, seed=7)
    print(f"\n{args.size} {args.model} model, {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, "
          f"{device} {dtype}, {torch.get_num_threads()} threads, torch {torch.__version__}")

    throughput_table(model, lambda b: equal_length(pool, b), args, device)

    spec_prompts = pool[:args.spec_prompts]
    max_new = profile.inference.max_new_tokens
    rows = [("1 (trained)", model, 1)]
    if args.mtp_layers > 1:
        extended = extend_mtp_layers(model, args.mtp_layers)
        train_prompts = chat_prompts(tokenizer, 256, seed=8)
        params = SamplingParams(temperature=0, max_new_tokens=max_new, stop_token_ids=[tokenizer.eos_token_id])
        outputs = generate(model, train_prompts, params, max_batch_size=64)
        batches = completion_batches(train_prompts, [c.tokens for c in outputs],
                                     profile.inference.mtp_finetune_batch, device=device,
                                     pad_token_id=tokenizer.pad_token_id)
        finetune_new_mtp_layers(extended, batches, profile.inference.mtp_finetune_steps,
                                lr=profile.inference.mtp_finetune_lr)
        rows.append((f"{args.mtp_layers} (copies fine-tuned)", extended.eval(), args.mtp_layers))
    print("\n| MTP drafts | plain tok/s | speculative tok/s | speed-up | acceptance per draft "
          "(conditional) | tokens per pass | same tokens |")
    print("|---|---|---|---|---|---|---|")
    for name, m, k in rows:
        plain, spec, stats, same = speculative(m, spec_prompts, tokenizer.eos_token_id, max_new, k,
                                               args.repeats, device)
        acceptance = ", ".join(f"{a:.2f}" for a in stats.conditional_acceptance)
        print(f"| {name} | {plain:,.0f} | {spec:,.0f} | {spec / plain:.2f}× | {acceptance} | "
              f"{stats.mean_accepted_length:.2f} | {same} |", flush=True)


if __name__ == "__main__":
    main()
