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
