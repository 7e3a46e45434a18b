"""scaled/configs: every file loads with the kit's profile loader at MiMo-7B's released shape, carries
the paper's hyper-parameters, and repeats the stages before it unchanged (so that each stage reuses
what the earlier ones built in runs/mimo_7b/). The launchers call only sub-commands the CLI has."""

import dataclasses
import re
from pathlib import Path

import pytest

from mimo_lite.config import preset
from mimo_lite.profile import load_profile
from mimo_lite.scaling import parameter_count

SCALED = Path(__file__).resolve().parents[1] / "scaled"
CONFIGS = sorted((SCALED / "configs").glob("*.yaml"))
STAGES = ["pretrain_7b", "sft_7b", "grpo_7b", "eval_7b"]             # each reuses the ones before it
UPSTREAM = {"pretrain_7b": ("model", "data", "tokenizer", "pretrain"),
            "sft_7b": ("problems", "sft"), "grpo_7b": ("rl",), "eval_7b": ("eval",)}


def test_every_stage_has_a_config():
    assert sorted(p.stem for p in CONFIGS) == sorted(STAGES)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_loads_at_mimo_7b_shape(path):
    profile = load_profile(path)
    assert profile.name == "mimo_7b" and profile.model.overrides == {}
    assert profile.model.config().to_dict() == preset("mimo_7b").to_dict()
    assert parameter_count(profile.model.config())["total"] == 7_833_409_536
    assert (profile.device, profile.dtype) == ("cuda", "bfloat16")


def test_pretrain_config_is_the_papers():
    p = load_profile(SCALED / "configs" / "pretrain_7b.yaml")
    t = p.pretrain
    assert t.total_tokens == 23_784_000_000_000 and t.peak_lr == 1.07e-4
    assert t.batch_tokens == 2560 * 8192
    assert [p.data.stage(s).seq_len for s in (1, 2, 3)] == [8192, 8192, 32768]
    assert t.stage_fractions == pytest.approx([17_784 / 23_784, 4_000 / 23_784, 2_000 / 23_784], abs=1e-5)
    assert t.stage3_rope_theta == 640_000 and t.mtp_loss_weight == [0.3, 0.1]
    assert (t.weight_decay, t.betas, t.grad_clip) == (0.1, [0.9, 0.95], 1.0)


def test_post_training_configs_are_the_papers():
    s = load_profile(SCALED / "configs" / "sft_7b.yaml").sft
    assert (s.lr, s.seq_len, s.batch_tokens) == (3e-5, 32768, 128 * 32768)
    r = load_profile(SCALED / "configs" / "grpo_7b.yaml").rl
    assert r.batch_prompts * r.group_size == 512 and r.updates_per_step == 16
    assert r.batch_prompts * r.group_size // r.updates_per_step == 32          # the actor mini-batch
    assert (r.lr, r.temperature, r.top_p, r.max_new_tokens) == (1e-6, 1.0, 1.0, 32768)
    assert r.kl_coef == 0.0 and r.easy_alpha == 0.1
    e = load_profile(SCALED / "configs" / "eval_7b.yaml").eval
    assert (e.temperature, e.top_p, e.max_new_tokens) == (0.6, 0.95, 32768)


def test_each_stage_repeats_the_stages_before_it():
    profiles = {name: load_profile(SCALED / "configs" / f"{name}.yaml") for name in STAGES}
    for i, later in enumerate(STAGES):
        for earlier in STAGES[:i + 1]:
            for section in UPSTREAM[earlier]:
                assert (dataclasses.asdict(getattr(profiles[later], section))
                        == dataclasses.asdict(getattr(profiles[earlier], section))), (later, section)
        top = ("seed", "device", "dtype", "compile")
        assert [getattr(profiles[later], k) for k in top] == [getattr(profiles["pretrain_7b"], k) for k in top]
    # the training stages recompute each block's activations in the backward (memory, not results)
    assert [profiles[name].activation_checkpointing for name in STAGES] == [True, True, True, False]


LAUNCHERS = sorted((SCALED / "launch").glob("*"))


def test_launchers_call_existing_commands_and_keep_multicast_off():
    from mimo_lite.cli import main

    assert {p.name for p in LAUNCHERS} >= {"single_node.sh", "multi_node.sh", "slurm.sbatch", "eval.sh"}
    for path in LAUNCHERS:
        text = path.read_text()
        for var in ("NCCL_NVLS_ENABLE=0", "TORCH_SYMM_MEM_DISABLE_MULTICAST=1", "NVSHMEM_DISABLE_NVLS=1"):
            assert var in text, f"{path.name} does not set {var}"
        if path.name != "eval.sh":                            # the torchrun launchers train all three
            assert all(f"{stage}) " in text for stage in ("pretrain", "sft", "grpo")), path.name
        for config in re.findall(r"scaled/configs/[\w.]+\.yaml", text):
            assert (SCALED.parent / config).is_file(), f"{path.name} names {config}, which does not exist"
    for command in ("pretrain", "sft", "grpo", "eval"):       # each launched sub-command parses
        with pytest.raises(SystemExit) as exit_:
            main([command, "--help"])
        assert exit_.value.code == 0
