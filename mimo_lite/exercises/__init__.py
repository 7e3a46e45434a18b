"""Implementation exercises with checkers: write a piece of MiMo yourself, compare it with the kit's.

Each chapter notebook ends with exercises; an implementation exercise gives a stub to fill and a
checker to call on it:

    from mimo_lite.exercises import check_rmsnorm

    def rms_norm(x, weight, eps):
        ...                                  # your code
    check_rmsnorm(rms_norm)                  # prints one paragraph: passed, or what differs and why

A checker runs your function on hidden inputs (fixed seeds; edge cases included) beside the
library's own implementation and returns a `CheckResult` (true when passed). On a mismatch it
names the input, the expected and the computed value, and the likely mistake when your output
equals what a known mistake gives. A stub that still raises `NotImplementedError` reads as "not
attempted yet"; any other exception is reported, never raised. Reference solutions, written from
scratch, are in `notebooks/solutions/`.

| checker | you write | compared against | notebook |
|---|---|---|---|
| `check_rmsnorm` | `rms_norm(x, weight, eps)` | `model.RMSNorm` | 03 |
| `check_rope` | `rope(x, positions, theta)` | `model.apply_rope` + `rope_cos_sin` | 03 |
| `check_swiglu` | `swiglu(x, w_gate, w_up, w_down)` | `model.MLP` | 03 |
| `check_mtp_input` | `mtp_input(hidden, input_ids, model)` | `MiMoForCausalLM.mtp_forward` | 03 |
| `check_sft_mask` | `sft_labels(tokenizer, messages)` | `train.sft.encode` | 06 |
| `check_group_advantages` | `group_advantages(rewards)` | `rl.grpo.group_advantages` | 08 |
| `check_clip_higher_loss` | `clip_higher_loss(logprobs, old_logprobs, advantages, mask, eps_low, eps_high)` | `rl.grpo.grpo_loss` | 08 |
| `check_fifo_selection` | `fifo_selection(finish_order, valid, batch_groups)` | `rl.seamless_sim` early termination | 09 |
| `check_pass_at_k` | `pass_at_k(n, correct, k)` | `eval.estimators.pass_at_k` | 10 |

Each checker's docstring states the exact signature. The submodules load on first use, so a
notebook pays only for the checkers it calls.
"""

from importlib import import_module

from .checking import CheckResult

_WHERE = {
    "check_rmsnorm": "architecture", "check_rope": "architecture", "check_swiglu": "architecture",
    "check_mtp_input": "architecture", "check_sft_mask": "sft_mask",
    "check_group_advantages": "grpo", "check_clip_higher_loss": "grpo",
    "check_fifo_selection": "seamless", "check_pass_at_k": "evaluation",
}
__all__ = ["CheckResult", *_WHERE]


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
