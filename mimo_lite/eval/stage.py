"""The evaluation stage: sample k answers per problem, score them, keep a table (notebook 10).

MiMo reports pass@1 averaged over several samples (AIME over 32, LiveCodeBench over 8; facts file
§6) and pass@k curves. Here, for a checkpoint and a suite:

  1. every problem is rendered as one user turn with the checkpoint's chat template;
  2. the kit's engine (or, at 7B, vLLM: `backend="vllm"`, `infer/vllm_backend.py`) samples `samples` replies per problem (temperature 0.6, top-p 0.95 as in
     the paper, unless told otherwise). Each reply has its own seed, derived from the run's seed,
     the problem's id and the sample's index, so a reply does not depend on what it was batched
     with: that is what makes a killed evaluation resumable to the same table;
  3. each reply is scored by the tasks' rules: a math reply is right when Math-Verify accepts its
     boxed answer, a code reply when its program passes every test in the sandbox;
  4. per problem, c right out of n gives avg@n = c/n and the unbiased pass@k (Chen et al. 2021);
     `summarise` averages them over problems per domain, tier and level, with 95% bootstrap
     intervals over problems (problems, not samples, are the units that vary).

Work is done in chunks of problems; each finished chunk is written to `out_dir/chunks/` at once
(atomically), and a restarted run skips the chunks already there. `out_dir/table.jsonl` holds one
row per problem, `out_dir/samples.jsonl` every reply with its verdict.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..artifacts import runs_dir, write_json
from ..tasks.problems import write_jsonl
from ..tasks.sandbox import WORKERS
from .estimators import avg_at_k, pass_at_k, prompt_ids
from .intervals import bootstrap

GROUPS = (("domain",), ("domain", "tier"), ("domain", "level"))


def load_checkpoint(model: str | Path, profile: str = "toy", runs_root: str | Path | None = None):
    """(model, tokenizer) from a Hugging Face checkpoint directory or a run name of `profile`
    ("base", "sft", "rl", "rl_zero": `runs/<profile>/<name>`).

    The engine runs the kit's architecture: a checkpoint of type "mimo", or "qwen2" (the same main
    stack: DESIGN.md, "Model contract"), loaded as MiMo without MTP layers. The tokenizer must
    carry a chat template, since every problem is asked as a user turn.
    """
    from transformers import AutoConfig, AutoTokenizer

    from ..config import MiMoConfig
    from ..model import MiMoForCausalLM

    path = checkpoint_dir(model, profile, runs_root)
    kind = AutoConfig.from_pretrained(path).model_type
    if kind not in ("mimo", "qwen2"):
        raise ValueError(f"{path / 'config.json'} has model_type {kind!r}: the kit's engine runs "
                         f"'mimo' and 'qwen2' checkpoints only.")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not tokenizer.chat_template:
        raise ValueError(f"{path / 'tokenizer_config.json'} has no chat template: evaluate a chat "
                         f"checkpoint, or add a 'chat_template' to that file.")
    fields = json.loads((path / "config.json").read_text())
    tied = fields.pop("tie_word_embeddings", False)          # small Qwen2 models share lm_head
    config = MiMoConfig(**{k: v for k, v in fields.items() if k not in ("model_type", "architectures")})
    if not tied:
        return MiMoForCausalLM.from_pretrained(path, config=config).eval(), tokenizer
    from transformers.utils import logging
    quiet = logging.get_verbosity()
    logging.set_verbosity_error()                            # lm_head is "missing": it is tied
    try:
        model = MiMoForCausalLM.from_pretrained(path, config=config).eval()
    finally:
        logging.set_verbosity(quiet)
    model.lm_head.weight.data.copy_(model.model.embed_tokens.weight.data)
    return model, tokenizer


def checkpoint_dir(model: str | Path, profile: str = "toy", runs_root: str | Path | None = None) -> Path:
    """The Hugging Face checkpoint folder that `model` names (a folder, or a run name of `profile`)."""
    path = Path(model)
    if not path.is_dir() and (runs_dir(profile, runs_root) / str(model)).is_dir():
        path = runs_dir(profile, runs_root) / str(model)
    if not path.is_dir():
        raise ValueError(f"No checkpoint at {str(model)!r}: give a Hugging Face model directory or "
                         f"a run name of {runs_dir(profile, runs_root)} (base, sft, rl, rl_zero).")
    if not (path / "config.json").is_file():
        raise ValueError(f"{path / 'config.json'} is missing: {path} is not a Hugging Face "
                         f"checkpoint (save one with model.save_pretrained).")
    return path


def vllm_replies(rollout, tokenizer, problems: list[dict], samples: int, seed: int) -> list[list[dict]]:
    """`generate_replies` through a `VLLMRollout`: the same per-reply seeds (vLLM's per-request seed)."""
    for i, problem in enumerate(problems):
        prompt = prompt_ids(tokenizer, problem["prompt"])
        for s in range(samples):
            rollout.submit(prompt, meta=(i, s), seed=reply_seed(seed, problem["id"], s))
    done = {}
    while not rollout.idle():
        done.update(rollout.step())
    return [[dict(reply=tokenizer.decode(done[i, s].tokens, skip_special_tokens=True),
                  tokens=len(done[i, s].tokens), finish_reason=done[i, s].finish_reason)
             for s in range(samples)] for i in range(len(problems))]


def reply_seed(seed: int, problem_id: str, sample: int) -> int:
    """The seed of one reply: the same for the same (run seed, problem, sample index)."""
    return int.from_bytes(hashlib.sha256(f"{seed}|{problem_id}|{sample}".encode()).digest()[:6], "big")


def generate_replies(model, tokenizer, problems: list[dict], samples: int, temperature: float,
                     top_p: float, max_new_tokens: int, seed: int, batch_size: int) -> list[list[dict]]:
    """`samples` replies per problem from the kit's engine, each with its own random stream."""
    import torch

    from ..infer import Engine, SamplingParams

    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                            stop_token_ids=(tokenizer.eos_token_id,))
    prompts = [prompt_ids(tokenizer, p["prompt"]) for p in problems]
    context = model.config.max_position_embeddings
    engine = Engine(model, params, max_batch_size=batch_size, tokenizer=tokenizer,
                    max_length=min(context, max(len(p) for p in prompts) + max(max_new_tokens, 1)))
    for i, (problem, prompt) in enumerate(zip(problems, prompts)):
        for s in range(samples):
            engine.add_request(prompt, request_id=i * samples + s,
                               seed=reply_seed(seed, problem["id"], s))
    with torch.inference_mode():
        done = {c.request_id: c for c in engine.run()}
    return [[dict(reply=tokenizer.decode(done[i * samples + s].tokens, skip_special_tokens=True),
                  tokens=len(done[i * samples + s].tokens),
                  finish_reason=done[i * samples + s].finish_reason) for s in range(samples)]
            for i in range(len(problems))]


def is_correct(problem: dict, reply: str) -> bool:
    """Right or wrong: Math-Verify for math, every test passing for code."""
    from ..tasks.rewards import score
    return score(problem, reply, "vanilla") == 1.0


def score_replies(problems: list[dict], replies: list[list[dict]]) -> list[list[bool]]:
    """Verdicts, problem by problem. Code runs in the sandbox from a thread pool (its slots bound
    the processes); math runs here, in the main thread, which Math-Verify's time limit needs."""
    pairs = [(p, r["reply"]) for p, rs in zip(problems, replies) for r in rs]
    with ThreadPoolExecutor(max(1, WORKERS)) as pool:
        code = {i: pool.submit(is_correct, p, r) for i, (p, r) in enumerate(pairs)
                if p["domain"] == "code"}
        flat = [code[i].result() if i in code else is_correct(p, r) for i, (p, r) in enumerate(pairs)]
    sizes = [len(rs) for rs in replies]
    return [flat[sum(sizes[:j]):sum(sizes[:j + 1])] for j in range(len(sizes))]


def evaluate(model, problems: list[dict], out_dir: str | Path, k: tuple[int, ...] = (1,),
             samples: int | None = None, tokenizer=None, temperature: float = 0.6,
             top_p: float = 0.95, max_new_tokens: int = 512, seed: int = 0, chunk: int = 16,
             batch_size: int = 32, backend: str = "engine", speculative: bool = False,
             engine_args: dict | None = None) -> list[dict]:
    """Evaluate `model` (a checkpoint path or run name, or a loaded model with its `tokenizer`)
    on `problems`; returns the table, one row per problem, and writes it to `out_dir`.

    `samples` replies per problem (default: the largest k; 1 when temperature is 0, i.e. greedy).
    A row: id, domain, tier, level, source, n, correct, avg@n and pass@k for each k ≤ n.
    Resumes from the chunks already in `out_dir` when the settings match.

    `backend`: "engine" (the kit's) or "vllm" (`model` is then a checkpoint folder, served by
    vLLM with `engine_args`; `speculative` adds MiMo's MTP draft, which changes speed, not replies).
    """
    if backend not in ("engine", "vllm"):
        raise ValueError(f'backend must be "engine" or "vllm", got {backend!r}.')
    if speculative and backend != "vllm":
        raise ValueError("speculative=True is vLLM's MTP speculative decoding: use it with backend=\"vllm\".")
    if not problems:
        raise ValueError("evaluate needs at least one problem: check the suite.")
    samples = 1 if temperature == 0 else (samples or max(k))
    if max(k) > samples:
        raise ValueError(f"pass@{max(k)} needs at least {max(k)} samples per problem, got "
                         f"samples={samples}: raise samples or lower k.")
    rollout = None
    if backend == "vllm":
        from transformers import AutoTokenizer

        from ..infer.vllm_backend import VLLMRollout
        tokenizer = tokenizer or AutoTokenizer.from_pretrained(model)
        rollout = VLLMRollout.serve(str(model), tokenizer.eos_token_id, temperature, top_p, max_new_tokens,
                                    batch_size, speculative, engine_args)
    elif tokenizer is None:
        model, tokenizer = load_checkpoint(model)
    out = Path(out_dir)
    settings = dict(model=str(getattr(model, "name_or_path", "")), samples=samples, k=list(k),
                    temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
                    chunk=chunk, problems=hashlib.sha1(json.dumps(
                        [[p["id"], p["prompt"]] for p in problems]).encode()).hexdigest()[:12])
    if backend == "vllm":                # other random streams: never resumed from the engine's replies
        settings.update(model=str(model), backend=backend)
    _start_or_resume(out, settings)
    for first in range(0, len(problems), chunk):
        path = out / "chunks" / f"{first // chunk:05d}.jsonl"
        if path.exists():
            continue
        part = problems[first:first + chunk]
        if rollout is not None:
            replies = vllm_replies(rollout, tokenizer, part, samples, seed)
        else:
            replies = generate_replies(model, tokenizer, part, samples, temperature, top_p,
                                       max_new_tokens, seed, batch_size)
        verdicts = score_replies(part, replies)
        write_jsonl(path, [dict(id=p["id"], sample=s, correct=v, **r)
                           for p, rs, vs in zip(part, replies, verdicts)
                           for s, (r, v) in enumerate(zip(rs, vs))])
    if rollout is not None:
        rollout.close()
    return _write_table(out, problems, k)


def evaluate_checkpoint(folder: str | Path, problems: list[dict], out_dir: str | Path,
                        device: str = "cpu", **settings) -> list[dict]:
    """`evaluate` of the checkpoint in `folder` on `device`: one call that a worker process can run
    (notebook 10 evaluates its four models side by side with `artifacts.build_all`)."""
    model, tokenizer = load_checkpoint(folder)
    return evaluate(model.to(device), problems, out_dir, tokenizer=tokenizer, **settings)


def _start_or_resume(out: Path, settings: dict) -> None:
    saved = out / "settings.json"
    if saved.exists() and json.loads(saved.read_text()) != settings:
        raise ValueError(f"{out} holds an evaluation with other settings ({saved}): remove the "
                         f"folder or choose another out_dir.")
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    write_json(saved, settings)


def _write_table(out: Path, problems: list[dict], k: tuple[int, ...]) -> list[dict]:
    rows = [json.loads(line) for path in sorted((out / "chunks").glob("*.jsonl"))
            for line in path.read_text().splitlines()]
    verdicts: dict[str, list[bool]] = {}
    for row in rows:
        verdicts.setdefault(row["id"], []).append(row["correct"])
    table = []
    for p in problems:
        c, n = sum(verdicts[p["id"]]), len(verdicts[p["id"]])
        table.append(dict(id=p["id"], domain=p["domain"], tier=p.get("tier"), level=p.get("level"),
                          source=p.get("source", "kit"), n=n, correct=c,
                          **{f"avg@{n}": avg_at_k(verdicts[p["id"]])},
                          **{f"pass@{j}": pass_at_k(n, c, j) for j in k if j <= n}))
    write_jsonl(out / "samples.jsonl", rows)
    write_jsonl(out / "table.jsonl", table)
    return table


def summarise(table: list[dict], groups: tuple[tuple[str, ...], ...] = GROUPS,
              resamples: int = 2000) -> list[dict]:
    """Mean of every pass@k and avg@n column over all problems, then per group (by domain, by
    domain and tier, by domain and level: rows whose field is missing sit out that grouping),
    each as {estimate, low, high, n} with a 95% bootstrap interval over problems.

    >>> table = [dict(domain="math", tier=1, correct=1, n=2, **{"pass@1": 0.5}),
    ...          dict(domain="math", tier=2, correct=0, n=2, **{"pass@1": 0.0})]
    >>> [(r["group"], r["pass@1"]["estimate"]) for r in summarise(table, groups=(("tier",),))]
    [({}, 0.25), ({'tier': 1}, 0.5), ({'tier': 2}, 0.0)]
    """
    metrics = sorted({key for row in table for key in row if key.startswith(("pass@", "avg@"))},
                     key=lambda m: (m.split("@")[0], int(m.split("@")[1])))

    def summary(group: dict, rows: list[dict]) -> dict:
        result = dict(group=group, problems=len(rows))
        for m in metrics:
            values = [r[m] for r in rows if m in r]
            result[m] = bootstrap(values, lambda xs: sum(xs) / len(xs), reps=resamples)
        return result

    summaries = [summary({}, table)]
    for fields in groups:
        keys = sorted({tuple(r.get(f) for f in fields) for r in table
                       if all(r.get(f) is not None for f in fields)}, key=str)
        summaries += [summary(dict(zip(fields, key)),
                              [r for r in table if tuple(r.get(f) for f in fields) == key])
                      for key in keys]
    return summaries


def eval_dir(profile: str, model_name: str, suite_name: str, runs_root: str | Path | None = None) -> Path:
    """runs/<profile>/eval/<model>-<suite>/: where `mimo-lite eval` keeps one evaluation."""
    return runs_dir(profile, runs_root) / "eval" / f"{Path(model_name).name}-{Path(suite_name).name.split('.')[0]}"
