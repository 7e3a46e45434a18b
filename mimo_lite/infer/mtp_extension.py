"""The report's inference extension: from one trained MTP layer to three drafting layers.

"After pre-training, we replicate the pre-trained single MTP layer into two identical copies.
Then, with the main model and first MTP layer frozen, we fine-tune two new MTP layers"
(report §2.2, facts file §1.3). Pre-training keeps one layer because more "yield no further
improvement" to the main model; at inference each extra layer adds one draft per step.

The copies are chained (layer k reads layer k-1's output and draft d_k; see `speculative`), so a
fresh copy first sees states one depth further along than the ones it was trained on, and the
fine-tuning teaches it that shift.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterable, Iterator, Sequence

import torch

from ..config import validate
from ..model import MiMoForCausalLM, shifted_cross_entropy


def extend_mtp_layers(model: MiMoForCausalLM, num_layers: int = 3) -> MiMoForCausalLM:
    """A copy of `model` with `num_layers` MTP layers; the new ones start as copies of layer 0."""
    have = model.config.num_nextn_predict_layers
    if have < 1:
        raise ValueError("The model has no trained MTP layer to replicate (num_nextn_predict_layers=0).")
    if num_layers <= have:
        raise ValueError(f"The model already has {have} MTP layer(s); ask for more than that, "
                         f"got num_layers={num_layers}.")
    config = copy.deepcopy(model.config)
    config.num_nextn_predict_layers = num_layers
    validate(config)
    weight = model.lm_head.weight
    extended = MiMoForCausalLM(config).to(device=weight.device, dtype=weight.dtype)
    missing, unexpected = extended.load_state_dict(model.state_dict(), strict=False)
    assert not unexpected and all(".mtp_layers." in key for key in missing)
    for layer in extended.model.mtp_layers[have:]:
        layer.load_state_dict(model.model.mtp_layers[0].state_dict())    # "identical copies"
    return extended.eval()


def finetune_new_mtp_layers(model: MiMoForCausalLM,
                            batches: Iterable[tuple[torch.Tensor, torch.Tensor]], steps: int,
                            first_new: int = 1, lr: float = 1e-3) -> list[list[float]]:
    """Train MTP layers `first_new`.. on (input_ids, labels) batches, everything else frozen.

    Loss: the mean over the new layers k of CE(layer k's logits at t, x_{t+k+2}), labels -100
    ignored. AdamW with the report's β = (0.9, 0.95), weight decay 0.1, clipping 1.0 (§2.3);
    linear warm-up over 10% of the steps, then cosine decay to 10% of `lr`. Returns the loss of
    each new layer at every step.
    """
    layers = model.model.mtp_layers
    if not 1 <= first_new < len(layers):
        raise ValueError(f"first_new={first_new} must point at an MTP layer after the first "
                         f"(the model has {len(layers)}).")
    trainable = [p for layer in layers[first_new:] for p in layer.parameters()]
    was_trainable = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(False)                     # main model and MTP layers < first_new frozen
    for p in trainable:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(trainable, lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, steps // 10)

    def lr_scale(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_scale)
    history = []
    try:
        for _, (input_ids, labels) in zip(range(steps), batches):
            with torch.no_grad():
                h = model.model(input_ids)                          # frozen main stack, (B, T, D)
            logits = model.mtp_forward(h, input_ids)
            losses = [shifted_cross_entropy(logits[k], labels, shift=k + 2)
                      for k in range(first_new, len(logits))]
            loss = sum(losses) / len(losses)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            history.append([l.item() for l in losses])
    finally:
        for p, flag in was_trainable.items():
            p.requires_grad_(flag)
    return history


def completion_batches(prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]],
                       batch_size: int, seed: int = 0, pad_token_id: int = 0,
                       device="cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (input_ids, labels) batches of prompt + completion, right-padded.

    Labels are -100 on the prompt and the padding, so every loss counts completion tokens only:
    the tokens the drafts will have to guess.
    """
    rng = random.Random(seed)
    pairs = [(list(p), list(c)) for p, c in zip(prompts, completions)]
    while True:
        chosen = rng.sample(pairs, min(batch_size, len(pairs)))
        width = max(len(p) + len(c) for p, c in chosen)
        ids = torch.full((len(chosen), width), pad_token_id)
        labels = torch.full((len(chosen), width), -100)
        for i, (p, c) in enumerate(chosen):
            ids[i, :len(p) + len(c)] = torch.tensor(p + c)
            labels[i, len(p):len(p) + len(c)] = torch.tensor(c)
        yield ids.to(device), labels.to(device)
