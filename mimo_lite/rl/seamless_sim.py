"""A discrete-event simulator of MiMo's rollout schedulers (Seamless Rollout Engine, report §3.4.1).

What it models (facts file §5.1):

- **Generators.** `workers` inference engines with `slots` sequences each, batched continuously: a
  slot frees the moment its response ends. One decode step of a worker with b busy slots takes
  t_step(b) = a + c·b seconds and gives every busy slot one token, so a worker's slots advance
  together on a shared token clock that runs at 1 / t_step(b) tokens per second.
- **Reward workers.** `reward_workers` servers scoring first-come first-served; a math answer is
  fast, a code answer runs its tests in a sandbox and is slow.
- **The data.** A rollout task is one prompt with G responses. Its pass rate comes from a Beta
  distribution; response lengths are lognormal and cut at the length cap, and a cut answer is
  wrong. Dynamic sampling needs `batch_groups` *valid* groups: G rewards that are not all equal.
- **Training.** Proportional to the tokens trained on, once per step, after the batch is ready.

The schedulers (Table 2, top to bottom), each a row of `MODES`:

  no_dynamic_sampling  one round of B prompts, barrier, score, train on all B whatever their advantage
  naive                rounds of prompts; after each, barrier, score everything, filter; repeat to B
  continuous           no barrier: a new task is launched whenever a slot is free and the active
                       tasks are predicted insufficient (live pass-rate statistics of this step);
                       the generator scores each finished answer itself, inline, before decoding on
  async_reward         the same, with answers scored by the reward workers while generation goes on
  early_termination    + once enough valid groups exist, abort what is still running; selection is
                       first-in-first-out: a group counts only when every task started before it ended

and three contrasts: `take_finished` (abort as soon as any B valid groups are done: biased short),
`one_step_stale` (early termination, but generation of step k+1 overlaps training of step k: the
off-policy design MiMo avoids) and, for Table 3, `validation` (score a whole set, barrier vs async).

    >>> r = simulate(SimConfig.small(), "early_termination", steps=2, seed=0)
    >>> r.selected == 2 * 8 * 4 and r.launched == r.selected + r.dropped + r.aborted
    True
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

# Table 2 (facts file §5.1): 256 H20 GPUs, a random 5-step trace, normalised to naive dynamic sampling.
PAPER_TABLE2 = {
    "no_dynamic_sampling": dict(overall=2.45, rollout=2.82, norm_idle=0.36, idle_ratio=0.708, waste=None),
    "naive": dict(overall=1.00, rollout=1.00, norm_idle=1.00, idle_ratio=0.693, waste=0.221),
    "continuous": dict(overall=1.99, rollout=2.20, norm_idle=0.25, idle_ratio=0.388, waste=0.139),
    "async_reward": dict(overall=2.09, rollout=2.34, norm_idle=0.21, idle_ratio=0.340, waste=0.164),
    "early_termination": dict(overall=2.29, rollout=2.61, norm_idle=0.15, idle_ratio=0.277, waste=0.129),
}
# Table 3: validation on the full validation set, async reward only.
PAPER_TABLE3 = {
    "naive": dict(overall=1.00, norm_idle=1.00, idle_ratio=0.658),
    "seamless": dict(overall=1.96, norm_idle=0.25, idle_ratio=0.329),
}
PAPER_PASS_RATE = 0.41                   # "the average sample pass rate in the trace was 41%"

# The kit's own engine decoding (benchmarks/RESULTS.md, "Generation", "One H200, `gpu` size,
# untrained weights (95.6M parameters), bf16", column "kit, CUDA graphs"): 1,253 tok/s at batch 1
# and 61,819 tok/s at batch 64. A decode step gives every row one token, so it lasts rows / (tok/s).
KIT_H200_DECODE = ((1, 1 / 1253), (64, 64 / 61819))     # (rows, seconds per decode step)
# The same engine decoding the full 7.8B model (RESULTS.md, "MiMo-7B on one H200", "The full 7.8B
# model decoding", CUDA graphs): 173 tok/s at batch 1 and 8,633 tok/s at batch 64.
KIT_H200_DECODE_7B = ((1, 1 / 173), (64, 64 / 8633))

#                    how tasks start   when answers are scored  when the batch is taken
MODES = {
    "no_dynamic_sampling": dict(launch="rounds", reward="barrier", stop="all", filter=False),
    "naive": dict(launch="rounds", reward="barrier", stop="all", filter=True),
    "continuous": dict(launch="on_demand", reward="inline", stop="all", filter=True),
    "async_reward": dict(launch="on_demand", reward="async", stop="all", filter=True),
    "early_termination": dict(launch="on_demand", reward="async", stop="fifo", filter=True),
    "take_finished": dict(launch="on_demand", reward="async", stop="any", filter=True),
    "one_step_stale": dict(launch="on_demand", reward="async", stop="fifo", filter=True, stale=True),
}
TABLE2_MODES = ("no_dynamic_sampling", "naive", "continuous", "async_reward", "early_termination")


@dataclass(frozen=True)
class SimConfig:
    """One cluster and one workload. The defaults are the paper's settings where it states them
    (256 GPUs, mean pass rate 0.41, 32,768-token cap) and stated guesses elsewhere. The paper's
    training batch of 512 is taken as 512 prompt groups; whether it counts prompts or responses
    is not stated. The decode step (a, c) is a guess for a 7B model on one H20, not a fit:
    `fit_decode_step()` fits it to the kit's own engine on one H200, at `gpu` size (95.6M
    parameters, 15–27× faster than the guess at 1 to 48 busy rows) or with the full 7.8B model
    (2.1–3.8× faster); `benchmarks/bench_seamless_sim.py` runs Table 2 with each."""

    workers: int = 256               # generator workers (the paper: 256 H20 GPUs, one engine each)
    slots: int = 48                  # sequences a worker decodes at once: 1.5 rounds of B·G / W
    step_s: float = 0.012            # a: seconds of a decode step with no sequence in it (a guess)
    step_s_per_slot: float = 0.0003  # c: extra seconds per busy slot, t_step(b) = a + c·b (a guess)
    reward_workers: int = 128        # reward servers (CPU processes) shared by math and code
    math_reward_s: float = 0.05      # median seconds to verify a math answer
    code_reward_s: float = 4.0       # median seconds to run a code answer's tests in the sandbox
    reward_sigma: float = 0.5        # lognormal spread of reward latency
    code_share: float = 0.5          # share of prompts that are code problems
    batch_groups: int = 512          # B: valid groups a step trains on (the paper's 512; its unit is not stated)
    group_size: int = 16             # G: responses per prompt (not stated in the report)
    round_groups: int = 0            # prompts per naive round; 0 means batch_groups
    mean_pass_rate: float = PAPER_PASS_RATE
    pass_concentration: float = 1.5  # α + β of the Beta: 1.5 leaves ≈ 20% of groups all-equal at G = 16
    median_length: float = 6000.0    # tokens; lognormal median of a response
    length_sigma: float = 0.9        # lognormal σ: the width of the long tail
    max_length: int = 32768          # the generation cap; longer answers are cut (and wrong)
    wrong_length_factor: float = 1.0  # median length of a wrong answer over a right one (1 = uncorrelated)
    train_s_per_token: float = 1.8e-6  # training seconds per trained token: ≈ 9.5% of a naive rollout,
                                       # what Table 2's overall vs rollout speed-ups imply
    prior_valid: float = 0.75        # valid-group share assumed before this step has any statistics
    launch_margin: float = 0.1       # continuous rollout provisions for (1 + margin) · B valid groups
    empirical_lengths: tuple = ()    # calibration: response lengths to resample instead of the lognormal
    empirical_pass_rates: tuple = ()  # calibration: per-prompt pass rates to resample instead of the Beta

    def __post_init__(self):
        if self.workers < 1 or self.slots < 1 or self.group_size < 2 or self.batch_groups < 1:
            raise ValueError("SimConfig needs workers, slots and batch_groups >= 1 and group_size >= 2.")
        if not 0 < self.mean_pass_rate < 1:
            raise ValueError(f"mean_pass_rate must lie strictly between 0 and 1, got {self.mean_pass_rate}.")

    def t_step(self, busy: int) -> float:
        """Seconds of one decode step of a worker with `busy` sequences: a + c·b."""
        return self.step_s + self.step_s_per_slot * busy

    @classmethod
    def small(cls, **overrides) -> "SimConfig":
        """A cluster of 4 × 12 slots and a batch of 8 groups of 4: milliseconds to simulate."""
        base = dict(workers=4, slots=12, reward_workers=2, batch_groups=8, group_size=4,
                    median_length=400.0, max_length=2048, train_s_per_token=2e-5)
        return cls(**{**base, **overrides})


@dataclass
class _Group:
    pass_rate: float
    code: bool
    lengths: np.ndarray        # (G,) tokens
    correct: np.ndarray        # (G,) bool
    latency: np.ndarray        # (G,) reward seconds
    scored: int = 0
    passed: int = 0
    done: bool = False

    @property
    def valid(self) -> bool:   # dynamic sampling: rewards not all equal (Eq. 2 gives signal)
        return 0 < self.passed < self.scored


class _Draws:
    """The prompts of one step in launch order, the same for every scheduler (common random numbers)."""

    def __init__(self, cfg: SimConfig, seed: int, step: int):
        self.cfg, self.rng, self.groups = cfg, np.random.default_rng([seed, step]), []

    def group(self, i: int) -> _Group:
        while len(self.groups) <= i:
            self.groups.append(self._draw())
        g = self.groups[i]
        return _Group(g.pass_rate, g.code, g.lengths, g.correct, g.latency)

    def _draw(self) -> _Group:
        cfg, rng, n = self.cfg, self.rng, self.cfg.group_size
        if cfg.empirical_pass_rates:
            p = float(rng.choice(cfg.empirical_pass_rates))
        else:
            k = cfg.pass_concentration
            p = float(rng.beta(cfg.mean_pass_rate * k, (1 - cfg.mean_pass_rate) * k))
        code = bool(rng.random() < cfg.code_share)
        correct = rng.random(n) < p
        if cfg.empirical_lengths:
            lengths = rng.choice(np.asarray(cfg.empirical_lengths, dtype=float), n)
        else:        # a wrong answer's median is wrong_length_factor times a right one's
            median = cfg.median_length * np.where(correct, 1.0, cfg.wrong_length_factor)
            lengths = median * np.exp(cfg.length_sigma * rng.standard_normal(n))
        lengths = np.clip(np.round(lengths), 1, cfg.max_length).astype(int)
        correct &= lengths < cfg.max_length                          # a cut answer has no final answer
        latency = (cfg.code_reward_s if code else cfg.math_reward_s) * np.exp(
            cfg.reward_sigma * rng.standard_normal(n))
        return _Group(p, code, lengths, correct, latency)


@dataclass
class _Worker:
    """One generator: busy slots share a token clock `v` (tokens each busy slot has decoded)."""

    free_slots: list
    v: float = 0.0
    t: float = 0.0                      # time up to which v and the idle counters are accounted
    stall_until: float = 0.0            # inline scoring: no decoding before this time
    version: int = 0                    # invalidates this worker's scheduled finish event
    active: dict = field(default_factory=dict)     # response id -> (finish_v, start_v, slot, start_t)
    heap: list = field(default_factory=list)       # (finish_v, response id)


@dataclass
class StepRecord:
    """What one step of one scheduler did."""

    rollout_s: float            # from the step's start until its batch is ready
    train_s: float
    idle_slot_s: float          # slot-seconds with nothing to decode (or stalled) during the rollout
    idle_worker_s: float        # worker-seconds with no slot decoding during the rollout
    launched: int               # responses handed to the generators
    started: int                # ... that decoded at least one token
    selected: int               # trained on
    dropped_zero: int           # in a group whose rewards were all equal
    dropped_excess: int         # in a valid group beyond the batch
    aborted: int                # stopped (or never started) by early termination
    scored: int
    finished: int
    tokens_generated: int
    tokens_trained: int
    selected_lengths: list


class _Rollout:
    """One step of one scheduler, simulated event by event."""

    FINISH, STALL_END, SCORED = 0, 1, 2

    def __init__(self, cfg: SimConfig, flags: dict, draws: _Draws, timeline: list | None):
        self.cfg, self.flags, self.draws, self.timeline = cfg, flags, draws, timeline
        self.now, self.events, self.seq = 0.0, [], 0
        self.workers = [_Worker(free_slots=list(range(cfg.slots - 1, -1, -1))) for _ in range(cfg.workers)]
        self.free = deque(w for _ in range(cfg.slots) for w in range(cfg.workers))  # one entry per free slot
        self.queue = deque()                       # response ids waiting for a slot
        self.servers = [(0.0, i) for i in range(cfg.reward_workers)]
        self.groups: list[_Group] = []
        self.resp = []                             # response id -> [group, index, tokens, state]
        self.held = []                             # barrier mode: finished, waiting to be scored
        self.idle_slot = self.idle_worker = 0.0
        self.valid_done = self.known_valid_active = self.active_groups = self.done_groups = 0
        self.round_open = self.round_left = 0
        self.fifo_front = self.fifo_valid = 0
        self.finished_valid = []
        self.selected_groups = None

    # --- the generators ------------------------------------------------------------------
    def _push(self, t, kind, *payload):
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, payload))

    def _advance(self, wid: int) -> None:
        """Account worker `wid` up to now: its token clock and its idle slot-seconds."""
        w = self.workers[wid]
        dt = self.now - w.t
        if dt <= 0:
            return
        b = len(w.active)
        if w.stall_until > w.t:                                     # scoring inline: nothing decodes
            self.idle_slot += self.cfg.slots * dt
            self.idle_worker += dt
        else:
            self.idle_slot += (self.cfg.slots - b) * dt
            self.idle_worker += dt if b == 0 else 0.0
            w.v += dt / self.cfg.t_step(b) if b else 0.0            # tokens per slot = dt / t_step(b)
        w.t = self.now

    def _schedule(self, wid: int) -> None:
        w = self.workers[wid]
        w.version += 1
        if not w.active or w.stall_until > self.now:
            return
        while w.heap[0][1] not in w.active:
            heapq.heappop(w.heap)
        t = self.now + max(0.0, w.heap[0][0] - w.v) * self.cfg.t_step(len(w.active))
        self._push(t, self.FINISH, wid, w.version)

    def _dispatch(self) -> None:
        touched = set()
        while self.queue and self.free:
            wid, rid = self.free.popleft(), self.queue.popleft()
            w = self.workers[wid]
            self._advance(wid)
            length = self.groups[self.resp[rid][0]].lengths[self.resp[rid][1]]
            w.active[rid] = (w.v + length, w.v, w.free_slots.pop(), self.now)
            heapq.heappush(w.heap, (w.v + length, rid))
            self.resp[rid][3] = "running"
            touched.add(wid)
        for wid in touched:
            self._schedule(wid)

    def _launch(self, n_groups: int) -> None:
        for _ in range(n_groups):
            gid = len(self.groups)
            self.groups.append(self.draws.group(gid))
            self.active_groups += 1
            for i in range(self.cfg.group_size):
                self.queue.append(len(self.resp))
                self.resp.append([gid, i, 0, "queued"])
        self._dispatch()

    def _on_finish(self, wid: int) -> None:
        w = self.workers[wid]
        self._advance(wid)
        ended = []
        while w.heap and (w.heap[0][1] not in w.active or w.heap[0][0] <= w.v + 1e-6):
            _, rid = heapq.heappop(w.heap)
            if rid in w.active:
                ended.append(rid)
        for rid in ended:
            finish_v, start_v, slot, start_t = w.active.pop(rid)
            w.free_slots.append(slot)
            self.free.append(wid)
            self.resp[rid][2] = self.groups[self.resp[rid][0]].lengths[self.resp[rid][1]]
            self.resp[rid][3] = "finished"
            if self.timeline is not None:
                self.timeline.append((f"gen {wid}.{slot}", start_t, self.now, "decode"))
        reward = self.flags["reward"]
        if reward == "inline":                 # the generator scores its own answers, then decodes on
            busy = sum(self._latency(rid) for rid in ended)
            w.stall_until = self.now + busy
            if self.timeline is not None:
                self.timeline.append((f"gen {wid}", self.now, w.stall_until, "score inline"))
            self._push(w.stall_until, self.STALL_END, wid, tuple(ended))
        for rid in ended:
            if reward == "async":
                self._submit(rid)
            elif reward == "barrier":
                self.held.append(rid)
        if reward == "barrier":
            self.round_left -= len(ended)
            if self.round_left == 0:           # the barrier: every answer of the round is back
                for rid in self.held:
                    self._submit(rid)
                self.held = []
        self._dispatch()
        self._top_up()
        self._schedule(wid)

    # --- the reward workers --------------------------------------------------------------
    def _latency(self, rid: int) -> float:
        gid, i = self.resp[rid][:2]
        return float(self.groups[gid].latency[i])

    def _submit(self, rid: int) -> None:
        """First come, first served on `reward_workers` servers."""
        free_t, server = heapq.heappop(self.servers)
        start = max(self.now, free_t)
        end = start + self._latency(rid)
        heapq.heappush(self.servers, (end, server))
        if self.timeline is not None:
            self.timeline.append((f"reward {server}", start, end, "score"))
        self._push(end, self.SCORED, rid)

    def _score(self, rid: int) -> None:
        r = self.resp[rid]
        assert r[3] == "finished", "each finished answer is scored exactly once"
        r[3] = "scored"
        g = self.groups[r[0]]
        was_valid = g.valid
        g.scored += 1
        g.passed += bool(g.correct[r[1]])
        self.known_valid_active += g.valid and not was_valid   # a pass and a fail: surely valid
        if g.scored == self.cfg.group_size:
            self._group_done(r[0])

    # --- dynamic sampling ----------------------------------------------------------------
    def _group_done(self, gid: int) -> None:
        g = self.groups[gid]
        g.done = True
        self.active_groups -= 1
        self.done_groups += 1
        if g.valid:
            self.known_valid_active -= 1
            self.valid_done += 1
            self.finished_valid.append(gid)
        stop = self.flags["stop"]
        if stop == "fifo":       # first in, first out: count a group only once all before it are done
            while self.fifo_front < len(self.groups) and self.groups[self.fifo_front].done:
                self.fifo_valid += self.groups[self.fifo_front].valid
                self.fifo_front += 1
                if self.fifo_valid == self.cfg.batch_groups:
                    self.selected_groups = [i for i in range(self.fifo_front) if self.groups[i].valid]
                    return
        elif stop == "any" and self.valid_done == self.cfg.batch_groups:
            self.selected_groups = list(self.finished_valid)
            return
        if self.flags["launch"] == "rounds":
            self.round_open -= 1
            if self.round_open == 0:
                if self.valid_done >= self.cfg.batch_groups or not self.flags["filter"]:
                    self._select_in_order()
                else:
                    self._open_round()
            return
        if self.active_groups == 0 and self.valid_done >= self.cfg.batch_groups:
            self._select_in_order()
        else:
            self._top_up()

    def _select_in_order(self) -> None:
        keep = [i for i, g in enumerate(self.groups) if g.valid or not self.flags["filter"]]
        self.selected_groups = keep[:self.cfg.batch_groups]

    def _open_round(self) -> None:
        n = self.cfg.round_groups or self.cfg.batch_groups
        self.round_open, self.round_left = n, n * self.cfg.group_size
        self._launch(n)

    def _top_up(self) -> None:
        """Continuous rollout: launch a task while a slot is free and the active tasks are
        predicted to fall short: valid so far + known-valid active + p̂ · other active < (1 + margin) · B,
        with p̂ the share of this step's finished groups that were valid (shrunk towards a prior)."""
        if self.flags["launch"] != "on_demand" or self.selected_groups is not None:
            return
        while self.free:
            if enough_in_flight(self.cfg, self.valid_done, self.done_groups, self.known_valid_active,
                                self.active_groups, self.cfg.batch_groups):
                return
            self._launch(1)

    # --- the step ------------------------------------------------------------------------
    def run(self) -> StepRecord:
        if self.flags["launch"] == "rounds":
            self._open_round()
        else:
            self._top_up()
        while self.selected_groups is None:
            t, _, kind, payload = heapq.heappop(self.events)
            self.now = t
            if kind == self.FINISH:
                wid, version = payload
                if version == self.workers[wid].version:
                    self._on_finish(wid)
            elif kind == self.STALL_END:
                wid, ended = payload
                self._advance(wid)
                for rid in ended:
                    self._score(rid)
                    if self.selected_groups is not None:
                        break
                self._schedule(wid)
            else:
                self._score(payload[0])
        return self._close()

    def _close(self) -> StepRecord:
        for wid, w in enumerate(self.workers):   # idle up to now; running answers are aborted
            self._advance(wid)
            for rid, (finish_v, start_v, slot, start_t) in w.active.items():
                self.resp[rid][2] = int(w.v - start_v)
                if self.timeline is not None:
                    self.timeline.append((f"gen {wid}.{slot}", start_t, self.now, "aborted"))
        selected = set(self.selected_groups)
        counts = dict(selected=0, dropped_zero=0, dropped_excess=0, aborted=0)
        lengths, trained = [], 0
        for gid, i, tokens, state in self.resp:
            g = self.groups[gid]
            if gid in selected:
                counts["selected"] += 1
                lengths.append(int(tokens))
                trained += int(tokens)
            elif not g.done:
                counts["aborted"] += 1
            else:
                counts["dropped_zero" if not g.valid else "dropped_excess"] += 1
        train_s = self.cfg.train_s_per_token * trained
        return StepRecord(
            rollout_s=self.now, train_s=train_s, idle_slot_s=self.idle_slot, idle_worker_s=self.idle_worker,
            launched=len(self.resp), started=sum(r[2] > 0 for r in self.resp), **counts,
            scored=sum(r[3] == "scored" for r in self.resp),
            finished=sum(r[3] in ("finished", "scored") for r in self.resp),
            tokens_generated=int(sum(r[2] for r in self.resp)), tokens_trained=trained,
            selected_lengths=lengths)


@dataclass
class SimResult:
    """Several steps of one scheduler, and the paper's measures over them."""

    config: SimConfig
    mode: str
    steps: list[StepRecord]
    timeline: list | None = None    # (lane, start_s, end_s, what) for a Gantt chart, step 0 only

    def total(self, name: str) -> float:
        return sum(getattr(s, name) for s in self.steps)

    @property
    def rollout_s(self) -> float:
        return self.total("rollout_s") / len(self.steps)

    @property
    def step_s(self) -> float:
        """Mean seconds per step: rollout then training, or overlapped one step stale."""
        if not MODES[self.mode].get("stale"):
            return (self.total("rollout_s") + self.total("train_s")) / len(self.steps)
        ready = trained = previous_trained = 0.0   # generation of k+1 waits for the weights of k-1
        for s in self.steps:
            ready = max(ready, previous_trained) + s.rollout_s
            previous_trained, trained = trained, max(ready, trained) + s.train_s
        return trained / len(self.steps)

    @property
    def idle_ratio(self) -> float:
        """Idle slot-seconds over all slot-seconds of the rollout phase."""
        return self.total("idle_slot_s") / (self.config.workers * self.config.slots * self.total("rollout_s"))

    @property
    def worker_idle_ratio(self) -> float:
        """Share of worker-seconds of the rollout phase with no slot decoding (a GPU with nothing to do)."""
        return self.total("idle_worker_s") / (self.config.workers * self.total("rollout_s"))

    @property
    def sample_waste(self) -> float:
        """Share of the responses that decoded tokens and were not trained on."""
        return 1 - self.total("selected") / self.total("started")

    @property
    def token_waste(self) -> float:
        return 1 - self.total("tokens_trained") / self.total("tokens_generated")

    @property
    def selected_lengths(self) -> list[int]:
        return [n for s in self.steps for n in s.selected_lengths]

    def __getattr__(self, name):        # launched, selected, dropped_zero, ...: summed over steps
        if name in StepRecord.__dataclass_fields__ and "steps" in self.__dict__:
            return self.total(name)
        raise AttributeError(name)

    @property
    def dropped(self) -> int:
        return self.total("dropped_zero") + self.total("dropped_excess")


def simulate(config: SimConfig, mode: str, steps: int = 5, seed: int = 0, timeline: bool = False,
             flags: dict | None = None) -> SimResult:
    """Run `steps` steps of one scheduler (a key of MODES). Same seed, same prompts in the same
    launch order for every scheduler. `timeline=True` records step 0's busy intervals."""
    if flags is None:
        if mode not in MODES:
            raise ValueError(f"Unknown scheduler {mode!r}: choose one of {', '.join(MODES)}.")
        flags = MODES[mode]
    records, lanes = [], [] if timeline else None
    for k in range(steps):
        rollout = _Rollout(config, flags, _Draws(config, seed, k), lanes if k == 0 else None)
        records.append(rollout.run())
    if timeline:
        train_start = records[0].rollout_s
        lanes.append(("train", train_start, train_start + records[0].train_s, "train"))
    return SimResult(config, mode, records, lanes)


def row(result: SimResult, baseline: SimResult) -> dict:
    """Table 2's columns for one scheduler, normalised to `baseline` (naive dynamic sampling)."""
    idle = result.total("idle_slot_s") / len(result.steps)
    base_idle = baseline.total("idle_slot_s") / len(baseline.steps)
    lengths = np.asarray(result.selected_lengths, dtype=float)
    return dict(
        mode=result.mode, workers=result.config.workers, step_s=result.step_s, rollout_s=result.rollout_s,
        overall_speedup=baseline.step_s / result.step_s, rollout_speedup=baseline.rollout_s / result.rollout_s,
        idle_slot_s=idle, norm_idle=idle / base_idle if base_idle else float("nan"), idle_ratio=result.idle_ratio,
        worker_idle_ratio=result.worker_idle_ratio,
        sample_waste=result.sample_waste, token_waste=result.token_waste,
        waste_zero_advantage=result.dropped_zero / result.started,
        waste_excess=result.dropped_excess / result.started,
        waste_aborted=1 - (result.selected + result.dropped) / result.started if result.started else 0.0,
        # nan where nothing was selected (a step that found no group with signal)
        mean_selected_length=float(lengths.mean()) if lengths.size else float("nan"),
        p90_selected_length=float(np.percentile(lengths, 90)) if lengths.size else float("nan"),
        truncated_share=float((lengths >= result.config.max_length).mean()) if lengths.size else float("nan"))


def table(config: SimConfig, modes=TABLE2_MODES, steps: int = 5, seed: int = 0) -> list[dict]:
    """Table 2: one row per scheduler, speed-ups and idle time normalised to naive dynamic sampling."""
    baseline = simulate(config, "naive", steps, seed)
    return [row(baseline if m == "naive" else simulate(config, m, steps, seed), baseline) for m in modes]


def validation(config: SimConfig, prompts: int | None = None, seed: int = 0) -> list[dict]:
    """Table 3: score a whole validation set once (no dynamic sampling, no continuous rollout),
    after a barrier (naive) or as each answer finishes (seamless: async reward only)."""
    n = prompts or config.batch_groups
    cfg = replace(config, batch_groups=n, round_groups=n, train_s_per_token=0.0)
    naive = simulate(cfg, "naive", 1, seed, flags=dict(launch="rounds", reward="barrier", stop="all", filter=False))
    seamless = simulate(cfg, "naive", 1, seed, flags=dict(launch="rounds", reward="async", stop="all", filter=False))
    rows = []
    for name, r in (("naive", naive), ("seamless", seamless)):
        rows.append(dict(mode=name, step_s=r.step_s, overall_speedup=naive.step_s / r.step_s,
                         norm_idle=r.total("idle_slot_s") / naive.total("idle_slot_s"), idle_ratio=r.idle_ratio,
                         worker_idle_ratio=r.worker_idle_ratio))
    return rows


def sweep(config: SimConfig, modes=("naive", "early_termination"), workers=(8, 16, 32, 64, 128, 256),
          length_sigmas=(0.9,), code_reward_s=(4.0,), steps: int = 2, seed: int = 0) -> list[dict]:
    """Every combination of cluster size, tail width (lognormal σ) and code reward latency; one row
    per scheduler, normalised to naive at the same point. The batch scales with the workers
    (B·G = ⅔ of the slots, as in the defaults), so each point is the paper's shape, smaller."""
    rows = []
    for w in workers:
        for sigma in length_sigmas:
            for latency in code_reward_s:
                batch = max(1, w * config.slots * 2 // (3 * config.group_size))
                cfg = replace(config, workers=w, batch_groups=batch, length_sigma=sigma, code_reward_s=latency,
                              reward_workers=max(1, config.reward_workers * w // config.workers))
                for r in table(cfg, modes, steps, seed):
                    rows.append(dict(r, length_sigma=sigma, code_reward_s=latency, batch_groups=batch))
    return rows


def fit_decode_step(pairs=KIT_H200_DECODE) -> tuple[float, float]:
    """Least-squares fit of t_step(b) = a + c·b to measured (rows b, seconds per decode step)
    pairs; returns (a, c), `SimConfig`'s (step_s, step_s_per_slot). The default pairs are the
    kit's engine on one H200 at `gpu` size (`KIT_H200_DECODE`, from benchmarks/RESULTS.md's
    "Generation" section): two points, so the line passes through both.

    >>> a, c = fit_decode_step(((1, 0.0013), (11, 0.0023), (21, 0.0033)))
    >>> round(a, 6), round(c, 6)
    (0.0012, 0.0001)
    """
    rows, seconds = (np.asarray(x, dtype=float) for x in zip(*pairs))
    if len(set(rows.tolist())) < 2:
        raise ValueError("fit_decode_step needs decode times at two or more different batch sizes.")
    c, a = np.polyfit(rows, seconds, 1)          # least squares: min Σ (a + c·b − t)²
    return float(a), float(c)


def enough_in_flight(cfg: SimConfig, valid_done: int, done_groups: int, known_valid_active: int,
                     active_groups: int, batch_groups: int) -> bool:
    """Continuous rollout's launch rule, shared by the simulator and `rl/seamless.py`: the tasks
    in flight suffice when valid so far + known-valid active + p̂ · other active ≥ (1 + margin) · B,
    p̂ being this step's share of valid finished groups, shrunk towards `cfg.prior_valid` with the
    weight of 4 groups."""
    prior = 4.0
    p_hat = (valid_done + prior * cfg.prior_valid) / (done_groups + prior)
    undecided = active_groups - known_valid_active
    return valid_done + known_valid_active + p_hat * undecided >= (1 + cfg.launch_margin) * batch_groups
