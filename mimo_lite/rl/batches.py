"""Which prompts a GRPO step trains on: dynamic sampling and the easy data pool.

Dynamic sampling (DAPO; report §3.3, facts file §4.3): a group whose answers all pass, or all
fail, has zero advantage everywhere (Eq. 2) and teaches nothing, yet its tokens would still
dilute the token-level mean. So the trainer over-samples prompts, drops those groups and keeps
drawing until the batch holds `batch_prompts` groups with signal.

Easy data filter and re-sampling (report §3.3.2, facts file §4.5): as training goes on more and
more prompts are solved every time, and dynamic sampling wastes more and more rollouts on them.
MiMo moves a prompt with a perfect pass rate into an *easy data pool* and, at rollout, draws from
that pool with probability α = 10%. Removing such prompts outright "introduces significant
instability" (the ablation `alpha = 0`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def zero_advantage(rewards: list[float | None]) -> bool:
    """True when a group carries no signal: its scored rewards are all equal (pass rate 0 or 1),
    or fewer than two of its answers could be scored."""
    scored = [r for r in rewards if r is not None]
    return len(scored) < 2 or max(scored) == min(scored)


def perfect(rewards: list[float | None]) -> bool:
    """Every scored answer earned the full reward (pass rate 1)."""
    scored = [r for r in rewards if r is not None]
    return bool(scored) and min(scored) >= 1.0


def dynamic_sampling(groups: list, rewards_of, batch_prompts: int) -> tuple[list, list]:
    """Keep the groups with signal, at most `batch_prompts` of them, in arrival order.

    `rewards_of(group)` gives a group's rewards. Returns (kept, dropped).
    """
    kept, dropped = [], []
    for group in groups:
        if zero_advantage(rewards_of(group)) or len(kept) >= batch_prompts:
            dropped.append(group)
        else:
            kept.append(group)
    return kept, dropped


@dataclass
class ProblemSampler:
    """Draws training prompts; with the easy filter on, perfectly solved prompts move to a pool
    that is drawn from with probability `alpha` (MiMo: 0.1; 0 removes them outright)."""

    problems: list[dict]
    alpha: float = 0.1
    easy_filter: bool = True
    seed: int = 0
    easy: list[str] = field(default_factory=list)          # ids in the easy data pool
    draws: int = 0
    easy_draws: int = 0

    def __post_init__(self):
        if not self.problems:
            raise ValueError("ProblemSampler needs at least one training problem.")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha is a probability and must lie in [0, 1], got {self.alpha}.")
        self.by_id = {p["id"]: p for p in self.problems}
        self.rng = random.Random(self.seed)

    def draw(self, n: int) -> list[tuple[dict, bool]]:
        """n prompts, each with whether it came from the easy data pool (True) or the main one."""
        easy = set(self.easy)
        active = [p for p in self.problems if p["id"] not in easy] or self.problems
        out = []
        for _ in range(n):
            self.draws += 1
            if self.easy and self.rng.random() < self.alpha:        # re-sample the easy pool
                self.easy_draws += 1
                out.append((self.by_id[self.rng.choice(self.easy)], True))
            else:
                out.append((self.rng.choice(active), False))
        return out

    def observe(self, problem: dict, rewards: list[float | None]) -> None:
        """After a group is scored: a perfectly solved prompt joins the easy pool."""
        if self.easy_filter and perfect(rewards) and problem["id"] not in self.easy:
            self.easy.append(problem["id"])

    def state(self) -> dict:
        return {"easy": self.easy, "draws": self.draws, "easy_draws": self.easy_draws,
                "rng": _plain(self.rng.getstate())}

    def restore(self, state: dict) -> None:
        self.easy, self.draws, self.easy_draws = list(state["easy"]), state["draws"], state["easy_draws"]
        self.rng.setstate(_tuples(state["rng"]))


def _plain(x):
    return [_plain(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x
