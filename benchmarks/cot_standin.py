"""A stand-in base model for notebook 05, its tests and benchmark: a+b with a chain of thought.

Until the pretraining stage provides `runs/<profile>/base/`, generation needs a model whose
outputs are worth drafting. This one learns, in minutes on a 2-core CPU, to add two 3–4 digit
numbers digit by digit (`reference/toy-feasibility.md`):

    prompt      " 902+8808="
    completion  "<think>2+8+0=10,0+0+1=1,9+8+0=17,0+8+1=9</think>answer: 9710<eos>"

Character-level tokens. The model is the profile's own config, trained with its own objective
L_main + λ·L_mtp (the MTP layer learns alongside) by the short AdamW loop below; it is a
placeholder for the kit's pretraining, not a second trainer.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

SPECIALS = ("<pad>", "<eos>", "<think>", "</think>")
CHARS = "0123456789+=, answer:"


class CharTokenizer:
    """One id per special token and per character of CHARS."""

    def __init__(self):
        symbols = list(SPECIALS) + sorted(set(CHARS))
        self.ids = {s: i for i, s in enumerate(symbols)}
        self.symbols = symbols
        self.pad_token_id, self.eos_token_id = self.ids["<pad>"], self.ids["<eos>"]
        self._split = re.compile("|".join(re.escape(s) for s in SPECIALS) + "|.", re.S)

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str) -> list[int]:
        return [self.ids[piece] for piece in self._split.findall(text)]

    def decode(self, ids) -> str:
        return "".join(self.symbols[i] if i < len(self.symbols) else "?" for i in ids
                       if i != self.pad_token_id)


def problem(rng: random.Random) -> tuple[str, str, int]:
    """(prompt, completion, answer) with operands of 3–4 digits, right-aligned to width 4."""
    a, b = (rng.randint(100, 9999) for _ in range(2))
    steps, carry = [], 0
    da, db = str(a)[::-1], str(b)[::-1]
    for i in range(max(len(da), len(db))):
        x, y = int(da[i]) if i < len(da) else 0, int(db[i]) if i < len(db) else 0
        total = x + y + carry
        steps.append(f"{x}+{y}+{carry}={total}")
        carry = total // 10
    return f"{a:>4}+{b:>4}=", f"<think>{','.join(steps)}</think>answer: {a + b}<eos>", a + b


def prompts(n: int, seed: int, tokenizer: CharTokenizer) -> tuple[list[list[int]], list[int]]:
    """n prompts (token ids) and their answers, reproducible from the seed."""
    rng = random.Random(seed)
    items = [problem(rng) for _ in range(n)]
    return [tokenizer.encode(p) for p, _, _ in items], [ans for _, _, ans in items]


def answer_of(text: str) -> int | None:
    match = re.search(r"answer: (\d+)", text)
    return int(match.group(1)) if match else None


def batch(rng: random.Random, n: int, tokenizer: CharTokenizer):
    """(input_ids, labels), right-padded; the loss covers the completion only (prompt = -100)."""
    rows = []
    for _ in range(n):
        p, c, _ = problem(rng)
        rows.append((tokenizer.encode(p), tokenizer.encode(c)))
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((n, width), tokenizer.pad_token_id)
    labels = torch.full((n, width), -100)
    for i, (p, c) in enumerate(rows):
        ids[i, :len(p) + len(c)] = torch.tensor(p + c)
        labels[i, len(p):len(p) + len(c)] = torch.tensor(c)
    return ids, labels


@dataclass
class StandinRecipe:
    steps: int
    batch_size: int          # sequences per step (~52 tokens each)
    lr: float = 1e-3
    seed: int = 0


# per profile: minutes on a 2-core CPU at toy (toy-feasibility.md: ~420 steps reach ~90%)
RECIPES = {"smoke": StandinRecipe(steps=30, batch_size=16),
           "toy": StandinRecipe(steps=500, batch_size=64),
           "gpu": StandinRecipe(steps=600, batch_size=128, lr=6e-4)}


def train(config, recipe: StandinRecipe, device="cpu", log_every: int = 50):
    """The profile's model trained on the task with its own loss, L_main + λ·L_mtp."""
    from mimo_lite import MiMoForCausalLM

    torch.manual_seed(recipe.seed)
    rng = random.Random(recipe.seed)
    tokenizer = CharTokenizer()
    model = MiMoForCausalLM(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.95),
                                  weight_decay=0.1)
    warmup = max(1, recipe.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * max(0, s - warmup) / max(1, recipe.steps - warmup)))))
    t0 = time.time()
    for step in range(recipe.steps):
        ids, labels = batch(rng, recipe.batch_size, tokenizer)
        out = model(ids.to(device), labels=labels.to(device))
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        if log_every and (step % log_every == 0 or step == recipe.steps - 1):
            print(f"  step {step:4d}  main loss {out.main_loss.item():.3f}  "
                  f"mtp loss {out.mtp_loss.item():.3f}  ({time.time() - t0:.0f} s)", flush=True)
    return model.eval()


def ensure_standin(profile, runs_root=None, device=None):
    """The stand-in for `profile`, trained once and cached in runs/<profile>/standin/<hash>/."""
    from mimo_lite import MiMoForCausalLM
    from mimo_lite.notebook import runs_dir
    from mimo_lite.profile import load_profile

    profile = load_profile(profile) if isinstance(profile, str) else profile
    recipe = RECIPES.get(profile.name, RECIPES["toy"])
    config = profile.model.config()
    key = json.dumps({"config": config.to_dict(), "recipe": asdict(recipe), "task": 1},
                     sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    folder = runs_dir(profile.name, runs_root) / "standin" / digest
    device = device or profile.torch_device
    if not (folder / "config.json").exists():
        print(f"No stand-in at {folder}: training one ({recipe.steps} steps).", flush=True)
        model = train(config, recipe, device)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tmp.replace(folder)
    else:
        print(f"Stand-in found at {folder}.", flush=True)
    model = MiMoForCausalLM.from_pretrained(folder).to(device).eval()
    return model, CharTokenizer()
