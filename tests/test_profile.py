import pytest

from mimo_lite.profile import available_profiles, load_profile


def test_every_shipped_profile_builds_a_model_config():
    assert {"smoke", "toy", "gpu"} <= set(available_profiles())
    for name in available_profiles():
        profile = load_profile(name)
        assert profile.name == name
        assert profile.model.config().vocab_size > 0


def test_unknown_profile_names_the_choices():
    with pytest.raises(ValueError, match="choose one of"):
        load_profile("tiny")


def test_typo_in_a_profile_file_is_refused(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  preset: smoke\n  overides: {vocab_size: 100}\n")
    with pytest.raises(ValueError, match="model.overides is an unknown key"):
        load_profile(path)


def test_own_profile_file_overrides_the_model(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  preset: smoke\n  overrides: {vocab_size: 300}\n")
    assert load_profile(path).model.config().vocab_size == 300


# ---- typed fields: every wrong value stops the load with one sentence naming file and key ----

import re

import yaml

from mimo_lite.artifacts import fingerprint
from mimo_lite.cli import main, parse_settings
from mimo_lite.profile import PROFILE_DIR, as_profile


def one_sentence(message: str) -> bool:
    return "\n" not in message and message.endswith(".") and len(re.split(r"(?<=[.;?!])\s+[A-Z]", message)) == 1


def smoke_with(tmp_path, section: str | None, key: str, value):
    """The smoke profile's file with one value replaced, written as YAML text (so `3e-3` stays as typed)."""
    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    (raw.setdefault(section, {}) if section else raw)[key] = "__VALUE__"
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw).replace("__VALUE__", str(value)))
    return path


def refused(path_or_name, key: str, overrides=None) -> str:
    with pytest.raises(ValueError) as err:
        load_profile(path_or_name, overrides)
    message = str(err.value)
    assert key in message and one_sentence(message), message
    return message


def test_scientific_notation_is_a_float_although_yaml_reads_a_string(tmp_path):
    assert yaml.safe_load("peak_lr: 3e-3")["peak_lr"] == "3e-3"          # PyYAML's reading
    profile = load_profile(smoke_with(tmp_path, "pretrain", "peak_lr", "3e-3"))
    assert profile.pretrain.peak_lr == 0.003 and isinstance(profile.pretrain.peak_lr, float)
    assert load_profile(smoke_with(tmp_path, "pretrain", "peak_lr", "1")).pretrain.peak_lr == 1.0


def test_a_word_for_a_number_is_refused_naming_file_and_key(tmp_path):
    path = smoke_with(tmp_path, "pretrain", "peak_lr", "abc")
    message = refused(path, "pretrain.peak_lr")
    assert str(path) in message and "a number > 0" in message


def test_a_negative_token_budget_is_refused_at_load(tmp_path):
    message = refused(smoke_with(tmp_path, "pretrain", "total_tokens", -5), "pretrain.total_tokens")
    assert "whole number ≥ 1" in message


def test_a_bool_is_not_a_number(tmp_path):
    refused(smoke_with(tmp_path, "sft", "micro_batch", "true"), "sft.micro_batch")
    refused(smoke_with(tmp_path, None, "seed", "false"), "seed")


@pytest.mark.parametrize("section, key, value, named", [
    ("data", "heldout_fraction", 0.9, "data.heldout_fraction"),
    ("pretrain", "betas", "[0.9]", "pretrain.betas"),
    ("rl", "code_scheme", "fancy", "rl.code_scheme"),
    ("rl", "math_tiers", "[1, 5]", "rl.math_tiers"),
    ("rl", "zero", "{lr: -1}", "rl.zero.lr"),
    ("rl", "ablation", "{batch_prompts: 0}", "rl.ablation.batch_prompts"),
    ("rl", "ablation", "{zero: {lr: 1}}", "rl.ablation.zero"),
    ("seamless", "code_share", 1.5, "seamless.code_share"),
    ("seamless", "grpo", "{rollout_mode: fastest}", "seamless.grpo.rollout_mode"),
    (None, "tracker", "mlflow", "tracker"),
    (None, "dtype", "float64", "dtype"),
    ("model", "preset", "huge", "model.preset"),
])
def test_ranges_and_choices_are_checked_where_declared(tmp_path, section, key, value, named):
    refused(smoke_with(tmp_path, section, key, value), named)


def test_an_unknown_key_is_one_sentence(tmp_path):
    message = refused(smoke_with(tmp_path, "pretrain", "compile", "true"), "pretrain.compile")
    assert "unknown key" in message


def test_overrides_are_read_as_yaml_and_checked_like_the_file():
    profile = load_profile("smoke", {"pretrain.log_every": "5", "pretrain.peak_lr": "3e-3",
                                     "rl.math_tiers": "[1,2]", "rl.code_tiers": "[]", "seed": 7,
                                     "compile": "true", "tracker": "tensorboard",
                                     "activation_checkpointing": "true"})
    assert (profile.pretrain.log_every, profile.pretrain.peak_lr) == (5, 0.003)
    assert profile.activation_checkpointing is True and load_profile("smoke").activation_checkpointing is False
    assert (profile.rl.math_tiers, profile.rl.code_tiers, profile.seed) == ([1, 2], [], 7)
    assert profile.compile is True and profile.tracker == "tensorboard"
    assert profile.name == "smoke"                        # runs/<profile>/ keeps the profile's name
    assert as_profile(profile, {"seed": "1"}).seed == 1 and profile.seed == 7
    assert as_profile(profile) is profile


@pytest.mark.parametrize("overrides, key", [
    ({"pretrain.log_ever": 5}, "pretrain.log_ever"),
    ({"nope.seed": 5}, "nope.seed"),
    ({"seed.x": 1}, "seed.x"),
    ({"pretrain.log_every": "0"}, "pretrain.log_every"),
    ({"pretrain.total_tokens": "true"}, "pretrain.total_tokens"),
    ({"activation_checkpointing": "maybe"}, "activation_checkpointing"),
])
def test_a_bad_override_names_its_key(overrides, key):
    assert refused("smoke", key, overrides).startswith(f"override {key} ")


def test_cli_set_parses_pairs_and_stops_without_a_traceback(capsys):
    assert parse_settings(["pretrain.log_every=5", "rl.math_tiers=[1, 2]"]) == {
        "pretrain.log_every": "5", "rl.math_tiers": "[1, 2]"}
    for argv, key in ((["--set", "pretrain.peak_lr=abc"], "pretrain.peak_lr"),
                      (["--set", "pretrain.log_every"], "pretrain.log_every")):
        with pytest.raises(SystemExit) as stop:
            main(["pretrain", "--config", "smoke", *argv])
        message = str(stop.value.code)
        assert message.startswith("mimo-lite: ") and key in message and one_sentence(message)


def test_fingerprint_leaves_out_what_cannot_change_a_result():
    base = load_profile("smoke")
    quieter = load_profile("smoke", {"pretrain.log_every": 5, "pretrain.checkpoint_every": 3,
                                     "compile": True, "tracker": "wandb", "threads": 2,
                                     "activation_checkpointing": True})
    assert fingerprint("pretrain", base.pretrain) == fingerprint("pretrain", quieter.pretrain)
    assert fingerprint(base) == fingerprint(quieter)
    hotter = load_profile("smoke", {"pretrain.peak_lr": "4e-3"})
    assert fingerprint("pretrain", base.pretrain) != fingerprint("pretrain", hotter.pretrain)
    # held-out pass@1 at every eval_every steps is part of what an RL run records
    evals = load_profile("smoke", {"rl.eval_every": 1})
    assert fingerprint(base.rl) != fingerprint(evals.rl)
