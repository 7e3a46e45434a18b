import pytest
from artifact_owners import OWNERS, artifacts_built_too_early


@pytest.fixture
def profile_dir(tmp_path):
    for name in ("notebooks", "corpus", "tokenizer", ".base.building-123"):
        (tmp_path / name).mkdir()
    (tmp_path / "stray_file.txt").write_text("files are not artifacts")
    return tmp_path


def test_earlier_artifacts_pass(profile_dir):
    assert artifacts_built_too_early(profile_dir, "02") == []
    assert artifacts_built_too_early(profile_dir, "08") == []


def test_a_later_notebooks_artifact_fails_naming_its_owner(profile_dir):
    assert artifacts_built_too_early(profile_dir, "01") == [
        "tokenizer/ belongs to notebook 02, but notebook 01 built it"]
    (profile_dir / "sft").mkdir()
    assert any("sft/ belongs to notebook 06" in p for p in artifacts_built_too_early(profile_dir, "05"))


def test_an_unknown_folder_fails(profile_dir):
    (profile_dir / "mystery").mkdir()
    [problem] = artifacts_built_too_early(profile_dir, "08")
    assert problem.startswith("mystery/ is in no notebook's list")


def test_owners_are_notebook_numbers():
    assert all(len(n) == 2 and n.isdigit() for n in OWNERS.values())


def test_a_second_part_may_use_its_first_parts_artifacts_and_not_the_next_notebooks(profile_dir):
    (profile_dir / "ablations").mkdir()              # notebook 08's (it queues 08b's runs)
    assert artifacts_built_too_early(profile_dir, "08b") == []
    assert artifacts_built_too_early(profile_dir, "05b") == ["ablations/ belongs to notebook 08, but notebook 05b built it"]
    (profile_dir / "seamless").mkdir()
    assert artifacts_built_too_early(profile_dir, "08b", before={"ablations"}) == [
        "seamless/ belongs to notebook 09, but notebook 08b built it"]


def test_folders_there_before_the_notebook_ran_are_not_its_doing(profile_dir):
    assert artifacts_built_too_early(profile_dir, "01", before={"corpus", "tokenizer"}) == []
    (profile_dir / "sft").mkdir()
    assert artifacts_built_too_early(profile_dir, "01", before={"corpus", "tokenizer"}) == [
        "sft/ belongs to notebook 06, but notebook 01 built it"]
