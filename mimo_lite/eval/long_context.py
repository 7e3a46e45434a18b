"""A long-context probe without words: copy a random span seen `d` tokens earlier.

MiMo extends its context in stage 3 by raising the RoPE base 10k → 640k and training on 32K
sequences, and shows the result with RULER needle-in-a-haystack retrieval (report §2.3, Fig. 4;
facts file §3.3). A small model cannot answer a needle question in words, so the probe tests the
operation retrieval rests on: find an earlier occurrence and copy what followed it (an induction
head). A model learns that operation only after a plateau of many optimiser steps, more than the
kit's `toy` and `gpu` runs take (`benchmarks/probe_copy_phase.py` measures where it falls, and
shows that past it this probe does see the extension); the probe says so when no model copies.
It plants a span of k random tokens in ordinary text and repeats it d tokens later:

    filler[:start] · S · filler … · S · (end)        the repeat begins d tokens after S does

and scores the repeat's tokens 2..k (the first token of the repeat cannot be predicted; every
later one can, by copying). Random tokens carry no meaning, so a model that cannot look back d
tokens scores about as badly on the repeat as on the first occurrence; one that can copy drives
the repeat's loss towards 0 and its top-1 accuracy towards 1.

    probe = copy_probe(model, filler, span_tokens, distances=[32, 96, 200, 400])
    probe[200]   # {"repeat_loss": …, "first_loss": …, "repeat_top1": …, "first_top1": …}

Random spans are not text the model has seen, so `question_reading` asks the same question in
the corpus's own words: does the model read the numbers of the problem it is solving, written d
tokens before its worked solution? (the needle is the question, the haystack held-out text).
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F


def plant(filler: torch.Tensor, span: torch.Tensor, distance: int, start: int) -> torch.Tensor:
    """One probe sequence: `filler` with `span` written at `start` and again at `start + distance`.

    filler: (T,) token ids with T ≥ start + distance + len(span); returns (start + distance + k,).
    """
    k = len(span)
    if distance < k:
        raise ValueError(f"The repeat must not overlap the span: distance {distance} < span length {k}.")
    end = start + distance + k
    if len(filler) < end:
        raise ValueError(f"Filler rows of {len(filler)} tokens are too short for distance {distance}: "
                         f"the probe needs {end} (start {start} + distance + span {k}).")
    ids = filler[:end].clone()
    ids[start:start + k] = span
    ids[start + distance:end] = span
    return ids


def probe_distances(short: int, long: int, start: int = 16, span_len: int = 8) -> list[int]:
    """Notebook 04's probe distances: 1/4, 3/4, 25/16 and 25/8 of the old context `short`, those
    whose repeat still ends inside the new context `long`.

    >>> probe_distances(128, 512)
    [32, 96, 200, 400]
    """
    return [d for d in (short // 4, 3 * short // 4, 25 * short // 16, 25 * short // 8)
            if start + d + span_len <= long]


@torch.no_grad()
def copy_probe(model, filler: torch.Tensor, span_tokens: torch.Tensor, distances: list[int],
               span_len: int = 8, start: int = 16, seed: int = 0,
               batch_size: int = 8) -> dict[int, dict[str, float]]:
    """Loss and top-1 accuracy on a repeated random span, per distance d (in tokens).

    filler: (n, T) rows of ordinary text, one probe sequence per row and distance.
    span_tokens: (V',) the ids spans are drawn from, k distinct ones per span (use tokens the
    model has been trained on: an unseen id's embedding is noise).
    `model(ids).logits` must be (B, L, V). Scores cover span tokens 2..k of each occurrence, so
    `first_*` is the same tokens with nothing to copy from: the no-retrieval reference.
    """
    g = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results = {}
    for d in distances:
        # k distinct tokens per span, so that each token of the span says what comes next
        spans = span_tokens[torch.rand(len(filler), len(span_tokens), generator=g).argsort(1)[:, :span_len]]
        seqs = torch.stack([plant(row, s, d, start) for row, s in zip(filler, spans)])  # (n, L)
        scores = {"first": [], "repeat": []}
        for batch in seqs.split(batch_size):
            logits = model(batch.to(device)).logits.float()                 # (b, L, V)
            for name, at in (("first", start), ("repeat", start + d)):
                where = torch.arange(at, at + span_len - 1, device=device)  # predicts at+1 .. at+k-1
                pred = logits[:, where]                                     # (b, k-1, V)
                target = batch.to(device)[:, where + 1]                     # (b, k-1)
                loss = F.cross_entropy(pred.flatten(0, 1), target.flatten(), reduction="none")
                scores[name].append(torch.stack([loss, (pred.argmax(-1) == target).flatten().float()]))
        results[d] = {f"{name}_{what}": torch.cat(parts, 1)[i].mean().item()
                      for name, parts in scores.items() for i, what in enumerate(("loss", "top1"))}
    model.train(was_training)
    return results


@torch.no_grad()
def loss_by_position(model, rows: torch.Tensor, edges: list[int], batch_size: int = 8) -> list[float]:
    """Mean next-token loss of ordinary text in position buckets [edges[i], edges[i+1]).

    The plainer half of a context-extension check: a model trained only on sequences of T tokens
    has never predicted at positions ≥ T, and with RoPE its loss there usually rises; a model
    trained at the longer context (MiMo's stage 3) keeps it flat. rows: (n, L) token ids with
    L ≥ edges[-1]; position p's loss is that of predicting token p + 1 from tokens 0..p.
    """
    if len(edges) < 2 or sorted(edges) != list(edges) or edges[0] < 0 or rows.shape[1] < edges[-1] + 1:
        raise ValueError(f"edges must rise from ≥ 0 and rows must hold edges[-1] + 1 tokens; got edges "
                         f"{edges} for rows of {rows.shape[1]} tokens.")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total = torch.zeros(edges[-1])
    for batch in rows[:, :edges[-1] + 1].split(batch_size):
        batch = batch.to(device)
        logits = model(batch[:, :-1]).logits.float()                           # (b, E, V)
        loss = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), reduction="none")
        total += loss.view(len(batch), -1).sum(0).cpu()
    model.train(was_training)
    per_position = total / len(rows)
    return [per_position[lo:hi].mean().item() for lo, hi in zip(edges, edges[1:])]


def addition_example(a: int, b: int) -> tuple[str, str]:
    """A column-addition example as the corpus writes it (`data.worked_math`, textbook form):
    the question, and the worked solution whose digits all depend on the question's numbers."""
    from ..data.worked_math import column_addition

    return f"Example: Add {a} and {b}.", "\nSolution: " + " ".join(column_addition(a, b))


@torch.no_grad()
def question_reading(model, tokenizer, distances: list[int] = (0,), filler: torch.Tensor | None = None,
                     n: int = 48, seed: int = 0, batch_size: int = 16) -> dict[int, dict[str, float]]:
    """Loss on the digits of a worked solution after its own question and after another's, per d.

    Each of `n` three-digit additions is written as `addition_example` with d tokens of `filler`
    (rows of held-out text, (m, T) with T ≥ d; none needed for d = 0) between the question and
    the solution; the same sequence with the next problem's question (other numbers, the same
    length in tokens) is the reference. A model that reads the question predicts the solution's
    digits better after its own (`gain` = other − own > 0; ln 10 ≈ 2.30 nats is a uniform guess
    among ten digits); one that does not scores both the same. Returns, per d, the mean losses
    and the gain with its 95% interval over the problems (`ci95`).
    """
    if n < 2:
        raise ValueError(f"question_reading needs n ≥ 2 problems (each is scored against another's question); got {n}.")
    rng = random.Random(seed)
    pairs = [(rng.randrange(100, 1000), rng.randrange(100, 1000)) for _ in range(n)]
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results = {}
    for d in distances:
        if d and (filler is None or filler.shape[1] < d):
            raise ValueError(f"question_reading needs filler rows of at least {d} tokens for distance {d}.")
        rows, scored = [], []                       # own question, then another's, for each problem
        for i, (a, b) in enumerate(pairs):
            question, solution = addition_example(a, b)
            sol = encode(solution)
            gap = filler[i % len(filler), :d].tolist() if d else []
            digits = [j for j, t in enumerate(sol) if tokenizer.decode([t]).strip().isdigit()]
            for q in (question, addition_example(*pairs[(i + 1) % n])[0]):
                head = encode(q) + gap
                rows.append(head + sol)
                scored.append([len(head) + j for j in digits])
        losses = []
        for lo in range(0, len(rows), batch_size):
            batch, where = rows[lo:lo + batch_size], scored[lo:lo + batch_size]
            width = max(map(len, batch))
            ids = torch.tensor([r + [r[-1]] * (width - len(r)) for r in batch], device=device)  # right-padded
            logits = model(ids).logits.float()                                # causal: padding is never read
            for k, pos in enumerate(where):
                at = torch.tensor(pos, device=device)
                losses.append(F.cross_entropy(logits[k, at - 1], ids[k, at]).item())
        own, other = torch.tensor(losses[0::2]), torch.tensor(losses[1::2])
        gain = other - own
        results[d] = {"own_loss": own.mean().item(), "other_loss": other.mean().item(),
                      "gain": gain.mean().item(), "ci95": 1.96 * gain.std().item() / n ** 0.5}
    model.train(was_training)
    return results
