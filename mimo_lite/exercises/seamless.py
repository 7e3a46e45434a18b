"""Notebook 09's implementation exercise: early termination's first-in-first-out batch selection.

The library's rule lives inside the simulator's step (`seamless_sim._Rollout._group_done`): the
checker replays a finish order through that very method, so the reference is the code notebook 09
measures with, not a second copy of it.
"""

from __future__ import annotations

import random
from collections import deque

import numpy as np

from ..rl.seamless_sim import MODES, SimConfig, _Group, _Rollout
from .checking import Case, Mismatch, run_cases


def _library_fifo(finish_order: list[int], valid: list[bool], batch_groups: int):
    """Replay `finish_order` through the simulator's early-termination rule; (selected, events read) or None."""
    step = _Rollout.__new__(_Rollout)              # only the dynamic-sampling state, no cluster
    step.cfg, step.flags = SimConfig.small(batch_groups=batch_groups), MODES["early_termination"]
    # a group of two scored answers is valid when exactly one passed (rewards not all equal)
    step.groups = [_Group(pass_rate=0.5, code=False, lengths=np.zeros(2), correct=np.zeros(2, bool),
                          latency=np.zeros(2), scored=2, passed=1 if v else 2) for v in valid]
    step.free = deque()                            # no free slot: nothing new is launched
    step.active_groups, step.done_groups = len(valid), 0
    step.valid_done = step.known_valid_active = step.fifo_front = step.fifo_valid = 0
    step.finished_valid, step.selected_groups = [], None
    for events, gid in enumerate(finish_order, start=1):
        step._group_done(gid)
        if step.selected_groups is not None:
            return list(step.selected_groups), events
    return None


def _fifo_mistakes(order: list[int], valid: list[bool], B: int) -> dict:
    done_valid = [g for g in order if valid[g]]
    take_finished = (sorted(done_valid[:B]), order.index(done_valid[B - 1]) + 1) if len(done_valid) >= B else None
    in_order = [g for g in range(len(valid)) if valid[g]][:B]
    barrier = (in_order, len(order)) if len(in_order) == B else None
    front, seen = 0, set()
    unfiltered = None
    for events, g in enumerate(order, start=1):   # every finished group counted, valid or not
        seen.add(g)
        while front in seen:
            front += 1
        if front >= B:
            unfiltered = (list(range(B)), events)
            break
    return {
        "the first B valid groups to *finish* taken (the `take_finished` contrast): short answers "
        "finish first, so the batch is biased towards them; FIFO counts a group only once every "
        "group launched before it has finished": take_finished,
        "waiting for every group to finish before choosing (naive dynamic sampling): early "
        "termination takes the batch as soon as the launch-order prefix holds B valid groups": barrier,
        "groups counted without the dynamic-sampling filter: only valid groups (rewards not all "
        "equal) go into the batch": unfiltered,
    }


def check_fifo_selection(fn):
    """Check `fifo_selection(finish_order, valid, batch_groups)` against the simulator's early termination.

    Groups are numbered 0, 1, 2, … in the order they were launched. finish_order: list[int], the
    group ids in the order their last answer was scored; valid: list[bool], valid[g] is True when
    group g's rewards are not all equal; batch_groups: B, the valid groups a step trains on.
    Returns (selected, events): the B valid groups of the batch in launch order, and how many
    entries of finish_order had been read when the batch was taken (the rest are aborted);
    or None when the groups run out first. A group counts only once every group launched before
    it has finished (first in, first out).
    """
    rng = random.Random(9)
    long_valid = [rng.random() < 0.7 for _ in range(20)]
    long_order = sorted(range(20), key=lambda g: g + rng.uniform(0, 6))   # launched in order, finish jittered
    cases = []
    for name, order, valid, B in [
            ("4 valid groups finishing in launch order, B = 3", [0, 1, 2, 3], [True] * 4, 3),
            ("group 0 finishing last of the first four, B = 3", [1, 2, 3, 0, 4], [True] * 5, 3),
            ("invalid groups (all rewards equal) among the first ones, B = 3",
             [0, 2, 1, 3, 5, 4], [True, False, True, True, False, True], 3),
            ("too few valid groups for the batch, B = 2", [1, 0, 2], [True, False, False], 2),
            ("20 groups finishing out of order, 70% valid, B = 8", long_order, long_valid, 8)]:
        cases.append(Case(name, (order, valid, B), _library_fifo(order, valid, B),
                          _fifo_mistakes(order, valid, B)))

    def compare(got, expected):
        if expected is None:
            if got is not None:
                raise Mismatch(f"there are fewer valid groups than B, so no batch can be taken: "
                               f"expected None, got {got!r}.")
            return
        if got is None:
            raise Mismatch(f"expected the batch {expected[0]} after {expected[1]} finished groups, got None.")
        try:
            selected, events = got
            selected, events = [int(g) for g in selected], int(events)
        except (TypeError, ValueError):
            raise Mismatch(f"expected a pair (selected group ids, events read), got {got!r}.") from None
        if sorted(selected) == expected[0] and selected != expected[0]:
            raise Mismatch(f"the right groups, but list them in launch order: {expected[0]}, not {selected}.")
        if (selected, events) != expected:
            raise Mismatch(f"expected groups {expected[0]} taken after {expected[1]} finished groups, "
                           f"got {selected} after {events}.")

    hint = ("Walk a front pointer over the groups in launch order: after each finish, advance it "
            "past every finished group, counting the valid ones; stop when the count reaches B.")
    return run_cases("FIFO selection", fn, cases, compare,
                     "the early-termination rule of mimo_lite.rl.seamless_sim", hint)
