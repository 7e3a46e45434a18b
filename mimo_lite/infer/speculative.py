"""MTP speculative decoding: the MTP layers draft, the main model verifies them in one pass.

MiMo-7B keeps its MTP layer for inference: "the first MTP layer achieves a remarkably high
acceptance rate about 90%, while even the third MTP layer maintains an acceptance rate above
75%" (report §2.2; facts file §1.3, §5.3). One step, with the main model having read x_0..x_{n-1}
and the next token x_n already chosen:

  draft   MTP layer 0 reads (h_{n-1}, x_n) and proposes d_1 ≈ x_{n+1}; layer k chains from layer
          k-1's output and reads d_k, proposing d_{k+1} (the sequential reading, see below).
  verify  the main model reads [x_n, d_1, .., d_K] in ONE forward pass, which gives its own
          next-token distribution p_i after each of them.
  accept  left to right, d_i is kept with probability min(1, p_i(d_i) / q_i(d_i)) (q_i: the
          draft's distribution); at the first rejection a token is drawn from
          norm(max(0, p_i - q_i)) instead, and if all K pass, a bonus token from p_{K+1}. This is
          the standard speculative-sampling rule: the output has exactly the main model's
          distribution. Greedy is its limit: keep d_i iff it is the main model's argmax.
  roll back  the cache columns of rejected drafts are dropped by lowering the lengths.

So a step costs one main pass plus K small MTP passes and yields 1 to K+1 tokens.

Chaining. Layer k > 0 takes layer k-1's output state (before its final norm) and the embedding
of draft d_k, as `MiMoForCausalLM.mtp_forward` trains it. The report calls its layers "parallel"
but its Fig. 2 stacks them on shifted token windows (facts file §1.3); we take the sequential,
DeepSeek-V3 reading because (1) DeepSeek-V3 is the design the report says it follows; (2) only
then can the k-th draft read the drafts before it: a layer fed the main model's h_t directly
would have to guess x_{t+k+2} without seeing x_{t+2}..x_{t+k+1}; (3) a copy of layer 0 placed
at depth k receives the same kind of input it was trained on (a pre-norm residual state plus a
token), which is what makes the report's replicate-then-fine-tune recipe a sensible start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from .cache import KVCache
from .engine import Completion, StopRule
from . import spec_graphs
from .fused import FusedDecoder, ModuleDecoder, decoder_for
from .sampling import SamplingParams, probabilities, sample, token_logprobs


@dataclass
class SpecStats:
    """Acceptance of the drafts, per draft position k = 1..K (position k is drafted by MTP layer k).

    acceptance[k]:              accepted_k / steps: how often the step got at least k drafts in
                                (vLLM's per-position rate).
    conditional_acceptance[k]:  accepted_k / drafted_k: how often draft k was right given that
                                drafts 1..k-1 were (the quality of layer k on its own).
    mean_accepted_length:       tokens per main-model pass, 1 + Σ_k acceptance[k] (vLLM's mean
                                acceptance length); the speed-up a free draft would give.
    """

    num_draft: int
    steps: int = 0
    drafted: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.drafted = self.drafted or [0] * self.num_draft
        self.accepted = self.accepted or [0] * self.num_draft

    def record(self, num_accepted: int) -> None:
        self.steps += 1
        for i in range(min(num_accepted + 1, self.num_draft)):
            self.drafted[i] += 1
        for i in range(num_accepted):
            self.accepted[i] += 1

    @property
    def acceptance(self) -> list[float]:
        return [a / max(self.steps, 1) for a in self.accepted]

    @property
    def conditional_acceptance(self) -> list[float]:
        return [a / d if d else float("nan") for a, d in zip(self.accepted, self.drafted)]

    @property
    def mean_accepted_length(self) -> float:
        return (self.steps + sum(self.accepted)) / max(self.steps, 1)


def accept_drafts(p: torch.Tensor, drafts: list[int], q: list[torch.Tensor] | None,
                  greedy: bool, generator: torch.Generator | None) -> tuple[int, int]:
    """The speculative-sampling rule. Returns (drafts accepted a, the token that follows them).

    p: (K+1, V) the main model's sampling distributions after x_n, d_1, .., d_K (greedy: logits);
    q: the K draft distributions (greedy: None).
    """
    K = len(drafts)
    if greedy:
        target = p.argmax(-1).tolist()
        a = 0
        while a < K and drafts[a] == target[a]:
            a += 1
        return a, target[a]
    u = torch.rand(K, generator=generator, device=p.device).tolist()
    for i, d in enumerate(drafts):
        p_d, q_d = p[i, d].item(), q[i][d].item()
        if u[i] * q_d < p_d:                       # accept with probability min(1, p(d)/q(d))
            continue
        residual = (p[i] - q[i]).clamp(min=0)      # norm(max(0, p - q)): what q under-proposes
        return i, torch.multinomial(residual / residual.sum(), 1, generator=generator).item()
    return K, torch.multinomial(p[K], 1, generator=generator).item()


def _draft(decoder: FusedDecoder | ModuleDecoder, cache: KVCache, hidden: torch.Tensor, seq: list[int],
           s: int, n: int, num_draft: int, params: SamplingParams, generator):
    """Run the MTP chain over indices s..n-1 (filling its cache) and draft d_1..d_K.

    hidden: (n-s, D) main-model states h_s..h_{n-1}. Layer k at index t reads x_{t+k+1} at
    position t+k+1 (as in `mtp_forward`); the tokens beyond x_n are the drafts made so far.
    """
    T = n - s
    known = seq[s + 1:n + 1]                                    # x_{s+1} .. x_n
    z = hidden[None]                                            # (1, T, D)
    window = cache.window(s, T)
    drafts, q = [], []
    for k in range(num_draft):
        tokens = (known + drafts)[k:k + T]                      # x_{t+k+1}, t = s..n-1
        ids = torch.tensor([tokens], device=z.device)
        z, logits = decoder.mtp(k, z, ids, s + k + 1, window)   # positions t+k+1; its slot: L + k
        if params.greedy:
            drafts.append(logits.argmax(-1).item())
        else:
            probs = probabilities(logits, params)
            drafts.append(torch.multinomial(probs, 1, generator=generator).item())
            q.append(probs[0])
    return drafts, (None if params.greedy else q)


@torch.inference_mode()
def speculative_generate(model, prompt: Sequence[int], params: SamplingParams,
                         num_draft: int | None = None, tokenizer=None,
                         step: str = "auto") -> tuple[Completion, SpecStats]:
    """Generate for one prompt with MTP drafts; returns the Completion and its SpecStats.

    num_draft: drafts per step, one per MTP layer (default: all of them). Greedy output equals
    `generate`'s token for token; sampled output has the same distribution.
    step: "graphs" replays each greedy step as one recorded CUDA graph (`spec_graphs`), "static"
    runs that fixed-shape step eagerly, "eager" the loop below; "auto" takes graphs on a GPU and
    the eager loop elsewhere. Sampling, a model that is not plain (`fused.is_plain`) and a prompt
    shorter than num_draft + 2 tokens always take the eager loop.
    """
    if step not in ("auto", "graphs", "static", "eager"):
        raise ValueError(f"step={step!r}: choose auto, graphs, static or eager.")
    config = model.config
    layers = config.num_nextn_predict_layers
    K = layers if num_draft is None else num_draft
    if layers == 0:
        raise ValueError("This model has no MTP layer to draft with (num_nextn_predict_layers=0).")
    if not 1 <= K <= layers:
        raise ValueError(f"num_draft={K} needs {K} MTP layers (one draft per layer) but the model "
                         f"has {layers}: lower num_draft, or add layers with extend_mtp_layers.")
    prompt = list(prompt)
    context = config.max_position_embeddings
    if not prompt or len(prompt) >= context:
        raise ValueError(f"The prompt must hold 1 to {context - 1} tokens (the model's context is "
                         f"{context}), got {len(prompt)}.")
    if min(prompt) < 0 or max(prompt) >= config.vocab_size:
        raise ValueError(f"Prompt token ids must lie in [0, {config.vocab_size}) (the vocabulary).")
    max_new = min(params.max_new_tokens, context - len(prompt))
    stop = StopRule(params, tokenizer)
    device = model.lm_head.weight.device
    generator = params.generator(device)
    decoder = decoder_for(model)                             # the model's forward, fewer ops
    completion, stats = Completion(0, prompt, start_step=0), SpecStats(K)

    def emit(tokens: list[int], logprobs: list[float]) -> bool:
        for token, logprob in zip(tokens, logprobs):
            completion.tokens.append(token)
            completion.logprobs.append(logprob)
            completion.finish_reason = stop(completion.tokens, max_new)
            if completion.finish_reason:
                return True
        return False

    if step == "auto":
        step = "graphs" if device.type == "cuda" else "eager"
    fixed = step != "eager" and params.greedy and isinstance(decoder, FusedDecoder) and len(prompt) >= K + 2
    if fixed:
        spec = spec_graphs.borrow(model, decoder, K, len(prompt) + max_new + K + 1, capture=step == "graphs")
        cache = spec.cache
    else:
        cache = KVCache.for_model(model, 1, len(prompt) + max_new + K + 1)

    n = len(prompt)                                   # tokens the main model has read
    h = decoder.forward(torch.tensor([prompt], device=device), cache.window(0, n))[0]   # (n, D)
    token, logprob = sample(decoder.logits(h[-1:]), params, generator)
    seq = prompt + token.tolist()                     # x_0 .. x_n
    s, hidden = 0, h                                  # MTP cache length; h_s .. h_{n-1}
    done = emit(token.tolist(), logprob.tolist())
    if fixed and not done:
        # the MTP chain over the prompt's indices before the step's window (n-K-1 .. n-1)
        z, before = h[None, :n - K - 1], n - K - 1
        for k in range(K):
            if before:
                ids = torch.tensor([seq[k + 1:k + 1 + before]], device=device)
                z, _ = decoder.mtp(k, z, ids, k + 1, cache.window(0, before))
        spec.start(n, seq[n - K:n + 1], h[n - K - 1:n])
        while not done:
            a, tokens, logprobs = spec.step(n)
            stats.record(a)
            n += 1 + a
            done = emit(tokens[:a + 1], logprobs[:a + 1])
    while not done:
        drafts, q = _draft(decoder, cache, hidden, seq, s, n, K, params, generator)
        ids = torch.tensor([[seq[n]] + drafts], device=device)
        h = decoder.forward(ids, cache.window(n, K + 1))[0]                   # (K+1, D)
        logits = decoder.logits(h)                                            # (K+1, V)
        p = logits if params.greedy else probabilities(logits, params)
        a, token = accept_drafts(p, drafts, q, params.greedy, generator)
        stats.record(a)
        new = drafts[:a] + [token]
        logprobs = token_logprobs(logits[:a + 1], torch.tensor(new, device=device), params)
        # roll back: the main cache keeps x_n, d_1..d_a; MTP layer k's entry at index t read
        # tokens up to x_{t+k+1}, valid iff t+k+1 ≤ n+a, so every layer keeps n + min(0, a-K+1)
        s_new = max(0, n + min(0, a - K + 1))
        hidden = torch.cat([hidden[s_new - s:], h[:a + 1]])
        s, n = s_new, n + 1 + a
        seq += new
        done = emit(new, logprobs.tolist())
    completion.end_step = stats.steps
    if tokenizer is not None:
        completion.text = tokenizer.decode(completion.tokens)
    return completion, stats


@torch.inference_mode()
def teacher_forced_acceptance(model, prompts: Sequence[Sequence[int]],
                              completions: Sequence[Sequence[int]]) -> list[float]:
    """Per MTP layer k: how often its greedy draft equals the main model's greedy next token.

    Measured in one forward pass per sequence, with every earlier token given (teacher forcing)
    and counted only where a draft can arise in decoding (drafting from the last prompt token
    on). On the model's own greedy outputs this is exactly the conditional acceptance of layer k
    in greedy speculative decoding, measured at every position instead of only where a step
    reaches layer k.
    """
    hits = [0] * model.config.num_nextn_predict_layers
    counts = [0] * len(hits)
    device = model.lm_head.weight.device
    for prompt, completion in zip(prompts, completions):
        seq = torch.tensor([list(prompt) + list(completion)], device=device)
        out = model(seq, return_mtp=True)
        main_next = out.logits[0].argmax(-1)                    # main_next[j-1] predicts x_j
        start, length = len(prompt) - 1, seq.shape[1]
        for k, lg in enumerate(out.mtp_logits):                 # lg[:, t] predicts x_{t+k+2}
            draft = lg[0, start:length - k - 2].argmax(-1)      # targets x_{start+k+2} .. x_{length-1}
            target = main_next[start + k + 1:length - 1]
            hits[k] += (draft == target).sum().item()
            counts[k] += draft.shape[0]
    return [h / c if c else float("nan") for h, c in zip(hits, counts)]


@dataclass
class StepCosts:
    """Seconds per pass at batch 1, from `step_costs`: what a speculative step spends its time on.

    A step of K drafts costs `draft` (K MTP passes, one token each) + `verify` (one main pass
    over K+1 tokens) + whatever the loop itself spends (sampling, roll-back, Python), and yields
    `tokens_per_pass` tokens on average, where plain decoding spends `main` per token. So

        speed-up = tokens_per_pass × main / (draft + verify + loop).

    It exceeds 1 only when the drafts are cheap next to the main pass and verifying K+1 tokens
    costs about as much as one: true for a large model whose batch-1 step is bound by reading its
    weights (MiMo-7B: one MTP layer beside 36 blocks), not for a model of a few blocks on a CPU.
    """

    num_draft: int
    main: float      # one plain decoding step: one token through the main stack and lm_head
    verify: float    # one main pass over K+1 tokens
    draft: float     # K MTP passes of one token each, with lm_head

    def speedup(self, tokens_per_pass: float, loop: float = 0.0) -> float:
        return tokens_per_pass * self.main / (self.draft + self.verify + loop)


@torch.inference_mode()
def step_costs(model, prompt: Sequence[int], num_draft: int = 1, repeats: int = 30) -> StepCosts:
    """Time the three passes of a speculative step on `model` after `prompt`: the median of
    `repeats` rounds, each running the three passes in turn.

    Each pass runs through the same decoder as `speculative_generate`, at the position where the
    first draft would be made; results are synchronised (`.item()`/`.tolist()`) like the loop's.
    """
    import statistics
    import time

    if not 1 <= num_draft <= model.config.num_nextn_predict_layers:
        raise ValueError(f"num_draft={num_draft} needs that many MTP layers; the model has "
                         f"{model.config.num_nextn_predict_layers}.")
    decoder, device = decoder_for(model), model.lm_head.weight.device
    prompt, K = list(prompt), num_draft
    n = len(prompt)
    cache = KVCache.for_model(model, 1, n + K + 1)
    h = decoder.forward(torch.tensor([prompt], device=device), cache.window(0, n))[0]
    token = torch.tensor([[prompt[-1]]], device=device)
    tokens = token.repeat(1, K + 1)

    def main():
        decoder.logits(decoder.forward(token, cache.window(n, 1))[0]).argmax(-1).item()

    def verify():
        decoder.logits(decoder.forward(tokens, cache.window(n, K + 1))[0]).argmax(-1).tolist()

    def draft():
        z, window = h[None, -1:], cache.window(n - 1, 1)
        for k in range(K):
            z, logits = decoder.mtp(k, z, token, n + k, window)
            logits.argmax(-1).item()

    passes = (main, verify, draft)
    times = [[] for _ in passes]
    for repeat in range(repeats + 1):                          # round-robin: a busy machine slows all three alike
        for fn, kept in zip(passes, times):
            t0 = time.perf_counter()
            fn()
            if repeat:                                         # the first round warms up
                kept.append(time.perf_counter() - t0)
    return StepCosts(K, *(statistics.median(t) for t in times))


def batch_one_timings(model, prompts: Sequence[Sequence[int]], params: SamplingParams,
                      num_draft: int, repeats: int = 2) -> list[dict]:
    """Plain and speculative decoding at batch 1, timed alternately: prompt by prompt, plain then
    speculative, for `repeats` rounds, so that a machine that slows down slows both alike.

    One row a prompt, summed over the rounds: `plain_s`, `spec_s` (seconds) and `plain_tokens`,
    `spec_tokens` (tokens generated). The rows are what an interval is drawn from: resampling
    prompts (`eval.intervals.bootstrap` with `batch_one_speedup`) shows how far the speed-up
    moves with the prompts and the timing noise they were measured under.
    """
    import time

    from .generate import generate

    rows = [dict(plain_s=0.0, spec_s=0.0, plain_tokens=0, spec_tokens=0) for _ in prompts]
    for _ in range(repeats):
        for prompt, row in zip(prompts, rows):
            t0 = time.perf_counter()
            [plain] = generate(model, [prompt], params)
            t1 = time.perf_counter()
            spec, _ = speculative_generate(model, prompt, params, num_draft=num_draft)
            t2 = time.perf_counter()
            row["plain_s"] += t1 - t0
            row["spec_s"] += t2 - t1
            row["plain_tokens"] += len(plain.tokens)
            row["spec_tokens"] += len(spec.tokens)
    return rows


def batch_one_speedup(rows: Sequence[dict]) -> float:
    """Speculative tokens per second over plain tokens per second, over `batch_one_timings` rows
    (nan without rows)."""
    plain_s, spec_s = sum(r["plain_s"] for r in rows), sum(r["spec_s"] for r in rows)
    if plain_s <= 0 or spec_s <= 0:
        return float("nan")
    plain = sum(r["plain_tokens"] for r in rows) / plain_s
    return sum(r["spec_tokens"] for r in rows) / spec_s / plain


def weights_read_ratio(config, num_draft: int = 1) -> float:
    """Weights read by K draft passes / weights read by one main pass, for a config.

    At batch 1 on a GPU, a decoding step of a large model is bound by reading its weights, so
    this ratio is what drafting costs next to a main pass there. A pass reads every matrix of its
    blocks plus `lm_head` (the embedding only one row per token, left out).
    """
    from ..model import MiMoForCausalLM

    with torch.device("meta"):
        model = MiMoForCausalLM(config)
    head = model.lm_head.weight.numel()
    main = sum(p.numel() for p in model.model.layers.parameters()) + head
    layers = list(model.model.mtp_layers)
    if not 1 <= num_draft <= len(layers):
        raise ValueError(f"num_draft={num_draft} needs that many MTP layers; the config has {len(layers)}.")
    draft = sum(sum(p.numel() for p in layer.parameters()) + head for layer in layers[:num_draft])
    return draft / main
