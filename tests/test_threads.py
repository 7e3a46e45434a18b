"""Torch's thread count changes no result: the premise of `artifacts.share_cores`, which gives a
notebook's last running training call the cores the finished ones left (and of notebook 04's
stage 1 on every process's cores). A toy-size model, where torch does split the work over threads."""

import functools
import time

import pytest
import torch

from mimo_lite.artifacts import Jobs, share_cores, torch_threads
from mimo_lite.config import preset
from mimo_lite.infer import SamplingParams, generate
from mimo_lite.model import MiMoForCausalLM
from mimo_lite.rl.grpo import grpo_loss


def _steps(threads: list[int], kind: str) -> list[torch.Tensor]:
    """One training step per entry of `threads`, each on that many threads: the kit's loss (main +
    λ·MTP) on pre-training rows or on SFT's packed ones (block-diagonal mask, masked labels), or
    GRPO's clipped objective (Eq. 1) on sampled answers."""
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("toy")).train()
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3, weight_decay=0.1)
    ids = torch.randint(0, 2048, (8, 128))
    inputs = dict(input_ids=ids, labels=ids.clone())
    if kind == "sft":
        docs = torch.arange(128).repeat(8, 1) // 48                  # three packed conversations a row
        inputs["labels"][:, :20] = -100                               # prompts: no loss
        inputs["position_ids"] = torch.arange(128).repeat(8, 1) % 48
        inputs["attention_mask"] = ((docs[:, :, None] == docs[:, None, :]) & torch.ones(128, 128).bool().tril())[:, None]
    advantages, mask = torch.randn(8), (torch.rand(8, 127) < 0.8).float()
    for n in threads:
        with torch_threads(n):
            if kind == "grpo":
                logits = model(ids).logits[:, :-1] / 0.9
                logprobs = logits.log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
                loss, _ = grpo_loss(logprobs, logprobs.detach() - 0.01, advantages, mask)
            else:
                loss = model(**inputs, mtp_loss_weight=0.3).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("kind", ["pretrain", "sft", "grpo"])
def test_training_steps_give_the_same_weights_on_one_thread_or_two(kind):
    one = _steps([1, 1, 1], kind)
    switched = _steps([1, 2, 2], kind)          # a run that gets the second core after its first step
    assert all(torch.equal(a, b) for a, b in zip(one, switched)), (
        "on this CPU torch's thread count changes the training step's result: set the profile's "
        "`processes` to 1, or the runs of a notebook depend on which finished first")


def test_sampling_gives_the_same_tokens_on_one_thread_or_two():
    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("toy")).eval()
    prompts = [torch.randint(0, 2048, (n,)).tolist() for n in (5, 17, 40, 9)]
    params = SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=24, seed=3)
    runs = []
    for n in (1, 2):
        with torch_threads(n):
            runs.append([(c.tokens, c.logprobs) for c in generate(model, prompts, params)])
    assert runs[0] == runs[1]


def _wait(condition, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _threads_after_share(folder, name: str, other: str) -> int:
    """In a worker: once `other` runs too, "quick" shares and ends; "slow" shares once it is alone."""
    from mimo_lite import artifacts

    (folder / name).touch()
    assert _wait((folder / other).exists)                      # both calls are running
    if name == "slow":
        assert _wait(lambda: artifacts._running.value == 1)    # "quick" has finished
    share_cores()
    return torch.get_num_threads()


def test_a_call_left_alone_in_the_pool_takes_the_idle_cores(tmp_path):
    with Jobs(2, threads=1) as jobs:
        slow = jobs.submit(functools.partial(_threads_after_share, tmp_path, "slow", "quick"))
        quick = jobs.submit(functools.partial(_threads_after_share, tmp_path, "quick", "slow"))
        assert quick.result() == 1                             # beside "slow": one core each
        assert slow.result() == 2                              # alone: both
    share_cores()                                              # outside a worker: nothing
    assert torch.get_num_threads() == 1                        # (conftest: one thread)
