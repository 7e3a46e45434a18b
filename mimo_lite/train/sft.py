"""Long-CoT supervised fine-tuning: loss on the assistant's tokens only, packed conversations.

MiMo-7B-SFT (report §3.1, facts file §4.1): about 500K cleaned samples, constant LR 3e-5, batch
128, samples packed into 32,768-token sequences, the MTP layer trained along. The kit keeps each
of those choices at toy size:

- `encode` renders a conversation with the chat template and labels exactly the assistant's
  tokens (its `<think>` block, its answer and the closing `<|im_end|>`); everything else is -100.
  A conversation longer than the context is skipped and counted, never truncated into a wrong mask.
- `pack` fills fixed-length rows with several conversations. Position ids restart at 0 for each
  conversation and a block-diagonal causal mask keeps attention inside it, so a packed row gives
  exactly the loss of its conversations run one at a time (the MTP layer included).
- `train_sft` is a constant-LR loop with the pre-training loop's machinery: atomic checkpoints
  and exact resume, metrics.jsonl, a tqdm bar. It trains the full model, or LoRA adapters on
  every attention and MLP projection through `peft` (then merged into the weights). Under
  torchrun (FSDP2) the base model is loaded sharded (`parallel.load_pretrained`) and each rank
  trains on its rows of every batch, the loss still divided by the whole batch's assistant tokens.
- `ensure_sft_model(profile, variant=...)` leaves an HF checkpoint in runs/<profile>/sft/<variant>/:
  "full" (long-CoT, full fine-tune), "lora" (long-CoT, adapters), "light" (format only, no
  reasoning: the LiteSFT start of report §3.6).
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..artifacts import (FORMAT, building, current, fingerprint, one_builder, run_folder, runs_dir,
                         write_json)
from ..chat import IM_END
from ..model import MiMoForCausalLM
from ..profile import SFTSection, as_profile
from . import parallel
from .run import Run, read_metrics

IGNORE = -100
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
VARIANTS = ("full", "lora", "light")


class Skip(ValueError):
    """A conversation the trainer cannot use; the message says why."""


# ---- one conversation → token ids and the loss mask -------------------------------------------

def check_messages(messages) -> None:
    """A chat record must be a list of {role, content} turns ending with a non-empty assistant turn."""
    if not isinstance(messages, list) or not messages:
        raise Skip("malformed: 'messages' must be a non-empty list of chat turns")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant") \
                or not isinstance(m.get("content"), str):
            raise Skip(f"malformed: turn {i} needs a role among system/user/assistant and a "
                       f"string content")
    if messages[-1]["role"] != "assistant":
        raise Skip("malformed: the last turn must be the assistant's reply")
    if not any(m["role"] == "user" for m in messages):
        raise Skip("malformed: no user turn")
    for m in messages:
        if m["role"] == "assistant" and not (m["content"].strip()
                                             or (m.get("reasoning_content") or "").strip()):
            raise Skip("empty assistant turn")


def encode(tokenizer, messages: list[dict], max_len: int) -> tuple[list[int], list[int]]:
    """(input ids, labels) of one conversation; labels are -100 except on assistant tokens.

    Each assistant turn's tokens run from just after `<|im_start|>assistant\\n` through its
    `<|im_end|>`: the model learns to write the reply and to stop. Raises `Skip` with the reason.
    """
    check_messages(messages)

    def ids(turns, generation_prompt=False):
        text = tokenizer.apply_chat_template(turns, tokenize=False,
                                             add_generation_prompt=generation_prompt)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    full = ids(messages)
    if len(full) > max_len:
        raise Skip(f"longer than the context ({len(full)} > {max_len} tokens)")
    labels = [IGNORE] * len(full)
    end_id = tokenizer.convert_tokens_to_ids(IM_END)
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start, upto = len(ids(messages[:i], True)), ids(messages[:i + 1])
        if full[:len(upto)] != upto or end_id not in upto[start:]:
            raise Skip("malformed: the chat template does not tokenise turn by turn")
        stop = start + upto[start:].index(end_id) + 1             # through <|im_end|>
        labels[start:stop] = full[start:stop]
    return full, labels


def prepare(records: list[dict], tokenizer, max_len: int) -> tuple[list[tuple], Counter]:
    """Encode every record; skipped ones are counted by reason (and reported once, not silently)."""
    examples, skipped = [], Counter()
    for record in records:
        try:
            examples.append(encode(tokenizer, record.get("messages") if isinstance(record, dict)
                                   else None, max_len))
        except Skip as why:
            skipped[str(why).split(" (")[0]] += 1
    if skipped:
        warnings.warn(f"SFT data: skipped {sum(skipped.values())} of {len(records)} conversations "
                      f"({dict(skipped)}); fix the records or raise the context.", stacklevel=2)
    if not examples:
        raise ValueError(f"No usable SFT conversation among {len(records)} records "
                         f"(skipped: {dict(skipped)}).")
    return examples, skipped


def reply_statistics(records: list[dict], tokenizer, max_len: int) -> dict:
    """What the SFT set teaches, per group ("math t2", "code t1"): replies, assistant tokens per reply
    (the trained tokens of `encode`: mean, median, max), the share of all assistant tokens, and
    the share of replies that catch and redo a slip ("Wait, ..."). Skipped records are left out."""
    groups: dict[str, list[tuple[int, bool]]] = {}
    for record in records:
        try:
            _, labels = encode(tokenizer, record["messages"], max_len)
        except Skip:
            continue
        key = f"{record['domain']} t{record['tier']}"
        slip = "Wait," in (record["messages"][-1].get("reasoning_content") or "")
        groups.setdefault(key, []).append((sum(l != IGNORE for l in labels), slip))
    total = sum(n for rows in groups.values() for n, _ in rows)
    stats = {}
    for key in sorted(groups):
        lengths = sorted(n for n, _ in groups[key])
        stats[key] = dict(replies=len(lengths), mean=sum(lengths) / len(lengths),
                          median=float(lengths[len(lengths) // 2]), max=lengths[-1],
                          token_share=sum(lengths) / total,
                          self_correcting=sum(slip for _, slip in groups[key]) / len(lengths),
                          lengths=lengths)
    return stats


# ---- packing ----------------------------------------------------------------------------------

@dataclass
class Packed:
    """Rows of packed conversations: ids, labels, restarting positions, and a document id per token."""
    input_ids: torch.Tensor      # (N, T)
    labels: torch.Tensor         # (N, T), -100 outside assistant tokens and on padding
    position_ids: torch.Tensor   # (N, T), 0.. within each conversation
    documents: torch.Tensor      # (N, T), conversation index within the row; -1 on padding

    def __len__(self):
        return self.input_ids.shape[0]

    def rows(self, index) -> dict:
        """Model inputs for a slice of rows, the block-diagonal causal mask included."""
        docs = self.documents[index]
        T = docs.shape[1]
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        mask = (docs[:, :, None] == docs[:, None, :]) & causal            # (n, T, T)
        return dict(input_ids=self.input_ids[index], labels=self.labels[index],
                    position_ids=self.position_ids[index], attention_mask=mask[:, None])


def pack(examples: list[tuple], seq_len: int, pad_id: int) -> Packed:
    """Greedy packing in the given order: a conversation that does not fit starts a new row."""
    rows, row = [], []
    for ids, labels in examples:
        if len(ids) > seq_len:
            raise ValueError(f"A conversation of {len(ids)} tokens does not fit a packed row of "
                             f"{seq_len}: skip it in `prepare` or raise seq_len.")
        if sum(len(i) for i, _ in row) + len(ids) > seq_len:
            rows.append(row)
            row = []
        row.append((ids, labels))
    if row:
        rows.append(row)
    N = len(rows)
    out = Packed(torch.full((N, seq_len), pad_id), torch.full((N, seq_len), IGNORE),
                 torch.zeros(N, seq_len, dtype=torch.long), torch.full((N, seq_len), -1))
    for r, row in enumerate(rows):
        at = 0
        for d, (ids, labels) in enumerate(row):
            n = len(ids)
            out.input_ids[r, at:at + n] = torch.tensor(ids)
            out.labels[r, at:at + n] = torch.tensor(labels)
            out.position_ids[r, at:at + n] = torch.arange(n)
            out.documents[r, at:at + n] = d
            at += n
    return out


# ---- the trainer ------------------------------------------------------------------------------

@dataclass
class SFTState:
    step: int = 0
    tokens: int = 0            # assistant (trained) tokens seen
    epoch: int = 0
    row: int = 0               # next packed row of this epoch
    metrics: dict = field(default_factory=dict)


def epoch_rows(examples: list[tuple], epoch: int, seed: int, seq_len: int, pad_id: int) -> Packed:
    """The epoch's packed rows: a seeded shuffle of the conversations, then packing (resumable)."""
    order = list(range(len(examples)))
    random.Random(f"{seed}-sft-epoch-{epoch}").shuffle(order)
    return pack([examples[i] for i in order], seq_len, pad_id)


def add_lora(model, cfg: SFTSection):
    """Wrap `model` with LoRA adapters on every attention and MLP projection (peft)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=0.0,
                        target_modules=LORA_TARGETS, bias="none")
    return get_peft_model(model, config)


def trainable_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def training_memory(model) -> dict:
    """Bytes held for training: weights, gradients and AdamW's two moments of the trainable ones."""
    trainable, total = trainable_parameters(model)
    size = next(model.parameters()).element_size()
    return {"weights": total * size, "gradients": trainable * size,
            "optimizer": trainable * 2 * size,
            "total": (total + 3 * trainable) * size}


def train_sft(model, examples: list[tuple], cfg: SFTSection, out_dir: Path, pad_id: int,
              seed: int = 0, total_tokens: int | None = None, max_steps: int | None = None,
              progress: bool = True, dtype=torch.float32, compile: bool = False,
              tracker: str = "none", activation_checkpointing: bool = False,
              async_checkpoints: bool = False) -> SFTState:
    """Fine-tune `model` in place (all its trainable parameters) on packed `examples`.

    Constant LR (report §3.1); loss = token-level mean over the assistant tokens of the batch,
    plus λ·MTP loss. Metrics to out_dir/metrics.jsonl, checkpoints to out_dir/checkpoints/;
    resumes from the newest good checkpoint. Stops after `total_tokens` assistant tokens.
    Under torchrun each rank trains on rows rank, rank + world, ... of every batch.
    """
    total_tokens = cfg.total_tokens if total_tokens is None else total_tokens
    run = Run(out_dir, model, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=cfg.betas,
              dtype=dtype, compile=compile, log_every=cfg.log_every,
              checkpoint_every=cfg.checkpoint_every, tracker=tracker, progress=progress,
              activation_checkpointing=activation_checkpointing, async_checkpoints=async_checkpoints)
    rank, world = parallel.rank(), parallel.world_size()
    state = run.resume(SFTState())
    rows = epoch_rows(examples, state.epoch, seed, cfg.seq_len, pad_id)
    batch_rows = max(1, cfg.batch_tokens // cfg.seq_len)
    bar = run.progress(total_tokens, state.tokens, unit="tok", desc="SFT")
    model.train()
    while state.tokens < total_tokens and (max_steps is None or state.step < max_steps):
        if state.row >= len(rows):                                  # next epoch, new shuffle
            state.epoch, state.row = state.epoch + 1, 0
            rows = epoch_rows(examples, state.epoch, seed, cfg.seq_len, pad_id)
        stop = min(state.row + batch_rows, len(rows))
        index, state.row = torch.arange(state.row, stop), stop
        n_labels = (rows.labels[index, 1:] != IGNORE).sum().item()   # main-loss targets, all ranks
        mine = index[rank::world]                                    # this rank's rows
        # Every rank runs as many micro-batches: FSDP gathers and reduces each unit together.
        n_micro = math.ceil(math.ceil(len(index) / world) / cfg.micro_batch)
        totals = torch.zeros(3)
        for m in range(n_micro):
            micro = {k: v.to(run.device) for k, v in
                     rows.rows(mine[m * cfg.micro_batch:(m + 1) * cfg.micro_batch]).items()}
            share = (micro["labels"][:, 1:] != IGNORE).sum().item() / max(n_labels, 1)
            if share == 0:                       # no trained token in this part of the batch
                if world == 1:
                    continue
                # a rank short of rows runs one of the batch with weight 0, to keep in step
                micro = {k: v.to(run.device) for k, v in rows.rows(index[:1]).items()}
            with run.autocast:
                out = run.forward(**micro, mtp_loss_weight=cfg.mtp_loss_weight)
            # Σ over ranks of Σ_micro loss·share is the batch's token mean; FSDP averages the
            # ranks' gradients, so × world turns that average back into the sum
            (out.loss * (share * world)).backward()
            totals += torch.tensor([out.loss.item(), out.main_loss.item(),
                                    out.mtp_loss.item() if out.mtp_loss is not None else 0.0]) * share
        totals = parallel.sum_over_ranks(totals)                     # the whole batch
        grad_norm = run.optimizer_step(cfg.grad_clip)
        state.step += 1
        state.tokens += n_labels
        run.count(len(index) * cfg.seq_len)
        bar.update(n_labels)
        if run.due(state.step, last=state.tokens >= total_tokens):
            line = run.log(state.step, tokens=state.tokens, epoch=state.epoch, loss=totals[0].item(),
                           main_loss=totals[1].item(), mtp_loss=totals[2].item(), lr=cfg.lr,
                           grad_norm=grad_norm)
            bar.set_postfix(loss=f"{line['main_loss']:.3f}", epoch=state.epoch)
        run.checkpoint(state)
    run.close(state)
    return state


# ---- data and models under runs/<profile>/sft/ ------------------------------------------------

def sft_data_fingerprint(profile) -> str:
    """What decides the SFT data: the problems, the query and cleaning settings, the seed and
    FORMAT["sft_data"]."""
    from ..tasks.problems import problems_key

    profile = as_profile(profile)
    cfg = profile.sft
    return fingerprint("sft-data", FORMAT["sft_data"], problems_key(profile), cfg.queries_per_tier,
                       profile.problems.code_families, profile.problems.code_variants,
                       cfg.max_candidates, cfg.incomplete_rate, cfg.max_per_query, profile.seed,
                       *(["keep_code_variants"] if cfg.keep_code_variants else []))


def variant_tokens(cfg, variant: str) -> int:
    """The assistant tokens a variant trains on."""
    return {"full": cfg.total_tokens, "lora": cfg.lora_tokens, "light": cfg.light_tokens}[variant]


def sft_fingerprint(profile, variant: str) -> str:
    """What decides an SFT model: the base model, the SFT data, the `sft` section, the variant's
    token budget, seed, dtype and FORMAT["sft"]."""
    from .pretrain import base_fingerprint

    profile = as_profile(profile)
    cfg = profile.sft
    tokens = variant_tokens(cfg, variant)
    return fingerprint("sft-model", FORMAT["sft"], variant, base_fingerprint(profile),
                       sft_data_fingerprint(profile), cfg, tokens, profile.seed, profile.dtype)


@one_builder("sft_data")
def ensure_sft_data(profile, runs_root=None) -> Path:
    """Build (or reuse) the cleaned long-CoT set and the light set: runs/<profile>/sft/data/."""
    from ..data.sft import clean_sft, light_sft, raw_sft_pool
    from ..tasks.problems import ensure_problems, load_problems

    profile = as_profile(profile)
    cfg = profile.sft
    problems = ensure_problems(profile, runs_root)
    heldout = load_problems(problems / "heldout.jsonl")
    eval_prompts = [p["prompt"] for p in heldout]
    code_ids = {p["id"] for p in heldout if p["domain"] == "code"} if cfg.keep_code_variants else None
    folder = runs_dir(profile.name, runs_root) / "sft" / "data"
    digest = sft_data_fingerprint(profile)
    if not current(folder, digest):
        raw = raw_sft_pool(cfg.queries_per_tier, profile.problems.code_families,
                           profile.problems.code_variants, cfg.max_candidates,
                           cfg.incomplete_rate, profile.seed, profile.problems.more_code_variants)
        kept, report = clean_sft(raw, eval_prompts, n=16, max_per_query=cfg.max_per_query,
                                 seed=profile.seed, heldout_code_ids=code_ids)
        with building(folder, digest) as tmp:
            for name, rows in (("full", kept), ("light", light_sft(kept))):
                (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            write_json(tmp / "report.json", report)
    return folder


def load_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@one_builder(lambda call: f"sft_{call['variant']}")
def ensure_sft_model(profile, runs_root=None, variant: str = "full", progress: bool = True) -> Path:
    """The SFT model of `profile` (runs/<profile>/sft/<variant>/, an HF checkpoint with tokenizer).

    variant: "full" (long-CoT, every weight), "lora" (long-CoT, LoRA adapters merged back), or
    "light" (answer format only). Trained from the base model when missing; a killed run resumes.
    """

    from .pretrain import ensure_base_model

    if variant not in VARIANTS:
        raise ValueError(f"Unknown SFT variant {variant!r}: choose one of {VARIANTS}.")
    profile = as_profile(profile)
    cfg = profile.sft
    model, tokenizer = ensure_base_model(profile, runs_root, progress)
    data = ensure_sft_data(profile, runs_root)
    root = runs_dir(profile.name, runs_root) / "sft"
    folder = root / variant
    tokens = variant_tokens(cfg, variant)
    digest = sft_fingerprint(profile, variant)
    if current(folder, digest):
        return folder
    print(f"[mimo-lite] SFT ({variant}) for profile {profile.name!r}: {tokens:,} assistant tokens "
          f"-> {folder}", flush=True)
    profile.use_threads()
    torch.manual_seed(profile.seed)
    records = load_records(data / ("light.jsonl" if variant == "light" else "full.jsonl"))
    examples, skipped = prepare(records, tokenizer, cfg.seq_len)
    run_dir = run_folder(root / f"{variant}_run", digest)
    model.train()
    if variant == "lora":
        if parallel.world_size() > 1:
            raise ValueError("LoRA SFT runs in one process: launch the full variant under torchrun, "
                             "or run the lora variant without it.")
        model = add_lora(model, cfg)
        run_cfg = SFTSection(**{**asdict(cfg), "lr": cfg.lora_lr})
    else:
        run_cfg = cfg
    trainable, total = trainable_parameters(model)
    memory = training_memory(model)
    t0 = time.perf_counter()
    state = train_sft(model, examples, run_cfg, run_dir, tokenizer.pad_token_id, profile.seed,
                      total_tokens=tokens, progress=progress, dtype=profile.torch_dtype,
                      compile=profile.compile, tracker=profile.tracker,
                      activation_checkpointing=profile.activation_checkpointing,
                      async_checkpoints=profile.async_checkpoints)
    wall = time.perf_counter() - t0
    if variant == "lora":
        model = model.merge_and_unload()
    metrics = read_metrics(run_dir / "metrics.jsonl")
    summary = dict(variant=variant, steps=state.step, assistant_tokens=state.tokens,
                   epochs=state.epoch + 1, conversations=len(examples), skipped=dict(skipped),
                   trainable_parameters=trainable, total_parameters=total, memory_bytes=memory,
                   first_loss=metrics[0]["main_loss"] if metrics else None,
                   final_loss=metrics[-1]["main_loss"] if metrics else None, wall_s=wall)
    model = parallel.whole_model(model)            # under torchrun gathered on rank 0, which saves it
    if parallel.rank() == 0:
        with building(folder, digest, **{k: summary[k] for k in ("steps", "assistant_tokens")}) as tmp:
            MiMoForCausalLM.save_pretrained(model, tmp)
            tokenizer.save_pretrained(tmp)
            write_json(tmp / "sft_summary.json", summary)
            (tmp / "metrics.jsonl").write_text((run_dir / "metrics.jsonl").read_text())
    parallel.barrier()
    return folder
