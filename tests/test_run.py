"""The run scaffold shared by the three trainers: precision, optimiser groups, metrics, tracker."""

import sys
from pathlib import Path

import pytest
import torch

from mimo_lite import MiMoForCausalLM, preset
from mimo_lite.profile import RLSection, SFTSection, load_profile
from mimo_lite.rl.trainer import train_grpo
from mimo_lite.train.run import Run, adamw, open_tracker, read_metrics
from mimo_lite.train.sft import train_sft

sys.path.insert(0, str(Path(__file__).parent))
from test_grpo import FakeTokenizer, InlineExecutor, small_token_reward  # noqa: E402
from test_post_training_gpu import examples  # noqa: E402

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU"))]


def watch_dtypes(model) -> set:
    """Record the dtype of every MLP output the model computes in training mode from now on
    (rollouts and evaluation generate in eval mode)."""
    seen = set()
    for layer in model.model.layers:
        layer.mlp.down_proj.register_forward_hook(
            lambda m, i, out: seen.add(out.dtype) if m.training else None)
    return seen


@pytest.mark.parametrize("device", DEVICES)
def test_sft_and_grpo_train_in_the_profiles_dtype(tmp_path, device):
    """Under the gpu profile (bfloat16) both post-training loops run the forward in bf16 (autocast)
    while the master weights stay fp32, and both still learn."""
    dtype = load_profile("gpu").torch_dtype
    assert dtype == torch.bfloat16

    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("smoke", vocab_size=64)).to(device)
    seen = watch_dtypes(model)
    cfg = SFTSection(seq_len=128, batch_tokens=512, micro_batch=4, lr=3e-3, total_tokens=10**9,
                     log_every=1, checkpoint_every=100)
    train_sft(model, examples(64), cfg, tmp_path / "sft", pad_id=0, max_steps=8, progress=False,
              dtype=dtype)
    losses = [m["main_loss"] for m in read_metrics(tmp_path / "sft" / "metrics.jsonl")]
    assert seen == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert losses[-1] < losses[0]

    torch.manual_seed(0)
    model = MiMoForCausalLM(preset("smoke", vocab_size=32)).to(device)
    problems = [{"id": f"p{i}", "prompt": str(i)} for i in range(8)]
    rl = RLSection(batch_prompts=4, group_size=8, updates_per_step=2, lr=3e-3, max_new_tokens=3,
                   checkpoint_every=100, max_rounds=3)
    seen = watch_dtypes(model)
    lines = train_grpo(model, FakeTokenizer(), problems, rl, tmp_path / "grpo", steps=10, seed=0,
                       executor=InlineExecutor(small_token_reward), progress=False, dtype=dtype)
    assert seen == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    rewards = [m["reward"] for m in lines]
    assert sum(rewards[-3:]) / 3 > rewards[0], rewards


def test_float32_runs_without_autocast(tmp_path):
    model = MiMoForCausalLM(preset("smoke", vocab_size=64))
    seen = watch_dtypes(model)
    run = Run(tmp_path, model, lr=1e-3)
    with run.autocast:
        run.forward(torch.randint(0, 64, (2, 8)))
    assert seen == {torch.float32} and not run.autocast._enabled


def test_weight_decay_spares_norms_and_biases():
    model = MiMoForCausalLM(preset("smoke", vocab_size=64))
    model.model.embed_tokens.weight.requires_grad_(False)
    decay, no_decay = adamw(model, 1e-3, 0.1, (0.9, 0.95)).param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    trainable = sum(p.requires_grad for p in model.parameters())
    assert len(decay["params"]) + len(no_decay["params"]) == trainable
    assert all(p is not model.model.embed_tokens.weight for p in decay["params"])


def test_resume_cuts_metrics_back_to_the_checkpoint(tmp_path):
    from dataclasses import dataclass

    @dataclass
    class State:
        step: int = 0
        seen: int = 0

    model = MiMoForCausalLM(preset("smoke", vocab_size=64))
    run = Run(tmp_path, model, lr=1e-3, checkpoint_every=2)
    state = run.resume(State())
    for _ in range(3):
        state.step += 1
        state.seen += 10
        run.log(state.step, seen=state.seen)
        run.checkpoint(state)                              # saved at step 2 only
    run.close()
    again = Run(tmp_path, MiMoForCausalLM(preset("smoke", vocab_size=64)), lr=1e-3)
    assert again.resume(State()) == State(step=2, seen=20)
    assert [m["step"] for m in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2]


def test_tracker_switch(tmp_path):
    assert open_tracker("none", tmp_path) is None
    with pytest.raises(ValueError, match="tracker must be one of"):
        open_tracker("mlflow", tmp_path)
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.warns(UserWarning, match="pip install tensorboard"):
            assert open_tracker("tensorboard", tmp_path) is None
    else:
        tracker = open_tracker("tensorboard", tmp_path)
        tracker.log({"step": 1, "loss": 2.5, "note": "text is skipped"})
        tracker.close()
        assert list((tmp_path / "tensorboard").glob("events.*"))
