import json

import pytest

pytestmark = pytest.mark.notebook


def test_notebook_06_sft_data_mask_packing_and_three_variants(run_notebook):
    r = run_notebook("06")

    # the paper's three cleaning steps each removed something, and the counts add up
    data = r["sft_data"]
    removed = (data["decontamination"]["responses_removed"] + data["incomplete"]["responses_removed"]
               + data["per_query_cap"]["responses_removed"])
    assert data["kept"]["responses"] == data["raw"]["responses"] - removed > 0
    assert data["incomplete"]["responses_removed"] > 0 and data["per_query_cap"]["responses_removed"] > 0
    assert r["light_records"] == data["kept"]["queries"]

    # what the data teaches: long-CoT replies by domain and tier, code a real share, slips redone
    stats = r["reply_lengths"]
    assert {"math t1", "math t2", "code t1"} <= set(stats)
    for key, s in stats.items():
        assert 0 < s["median"] <= s["max"] and s["mean"] > 0, key
    assert stats["math t2"]["mean"] > stats["math t1"]["mean"]
    assert 0 < r["code_token_share"] < 1 and 0 < r["self_correcting_share"] < 0.5
    assert set(r["heldout_code_tier1"]) == {"base", "light", "full", "lora"}

    # loss mask: the trained tokens are exactly the reply; packing changes nothing but speed
    assert r["mask_is_reply"] and 0 < r["sample_trained"] < r["sample_tokens"]
    assert r["packing_gap"] < 1e-4
    assert r["conversations_per_row"] > 1 and r["packing_fill"] > r["padded_fill"]

    runs = r["sft_runs"]
    assert set(runs) == {"full", "lora", "light"}
    for variant, s in runs.items():
        assert s["steps"] > 0 and 0 < s["final_loss"] < 20, variant
    # a dozen steps of rank-4 adapters on the smoke model move the loss less than batch noise:
    # only the full and light runs must show it falling here (test_sft checks LoRA's training)
    assert runs["full"]["final_loss"] < runs["full"]["first_loss"]
    assert runs["light"]["final_loss"] < runs["light"]["first_loss"]
    assert runs["lora"]["trainable_parameters"] < runs["full"]["trainable_parameters"] / 4
    assert runs["lora"]["memory_bytes"]["optimizer"] < runs["full"]["memory_bytes"]["optimizer"] / 4
    assert runs["full"]["trainable_parameters"] == runs["full"]["total_parameters"]

    table = r["heldout_pass_at_1"]
    assert set(table) == {"base", "light", "full", "lora"}
    for name, row in table.items():
        assert 0 <= row["greedy"] <= 1 and 0 <= row["sampled"] <= 1, name
    assert set(r["boxed_fraction"]) == set(table)

    # MTP speculative decoding on the SFT model's replies: output unchanged, figures consistent
    assert r["sft_spec1_identical"] is True and r["sft_spec3_identical"] is True
    assert 0 <= r["sft_spec1_acceptance"] <= 1 and 0 <= r["base_spec1_acceptance"] <= 1
    assert 0 <= r["repetition_sft"] <= 1 and 0 <= r["repetition_base"] <= 1
    assert r["sft_spec3_mean_accepted_length"] == pytest.approx(1 + sum(r["sft_spec3_acceptance"]))
    assert len(r["sft_spec3_conditional_acceptance"]) == len(r["base_spec3_conditional_acceptance"])
    assert r["sft_spec1_speedup"] > 0 and r["sft_spec3_speedup"] > 0
    for k in ("sft_spec1_speedup", "sft_spec3_speedup"):
        low, high = r[f"{k}_interval"]
        assert low <= r[k] <= high, k
    low, high = r["sft_spec1_speedup_interval"]
    assert r["sft_drafting_verdict"] == ("pays" if low > 1 else "costs" if high < 1 else "within noise")


def test_the_closing_summary_follows_the_recorded_figures(run_notebook, smoke_runs):
    r = run_notebook("06")
    table, gain = r["heldout_pass_at_1"], r["heldout_math_gain"]
    low, high = gain["interval"]                   # full − base on math, paired over the same problems
    assert gain["problems"] > 0 and low <= gain["mean"] <= high
    assert gain["mean"] == pytest.approx(table["full"]["math"] - table["base"]["math"])
    assert r["sft_math_change"] == ("higher" if low > 0 else "lower" if high < 0 else "within noise")
    rate = r["heldout_code_tier1"]["full"]["sampled"]      # what RL samples at T = 1 from the full SFT model
    assert r["code_tier1_in_rl_band"] == (rate is not None and 0.1 <= rate <= 0.6)
    executed = json.loads((smoke_runs / "smoke" / "notebooks" / "06_sft.ipynb").read_text())
    [closing] = [c for c in executed["cells"] if "code_tier1_in_rl_band=" in "".join(c["source"])]
    printed = "".join("".join(o.get("text", "")) for o in closing["outputs"])
    assert f"{gain['mean']:+.3f} [{low:+.3f}, {high:+.3f}]" in printed
    if rate is not None:
        where = "inside" if r["code_tier1_in_rl_band"] else "BELOW" if rate < 0.1 else "ABOVE"
        assert f"is {rate:.3f}, {where} the band" in printed
    assert f"{r['self_correcting_share']:.1%} of the replies catch and redo a slip" in printed


def test_the_by_hand_sft_steps_are_the_trainers_first_steps(run_notebook):
    rec = run_notebook("06")
    assert rec["sft_hand_matches_trainer"] is True
    assert all(s["assistant_tokens"] > 0 and s["main_loss"] > 0 for s in rec["sft_hand_steps"])
