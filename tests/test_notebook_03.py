def test_architecture_notebook_rebuilds_the_model(run_notebook):
    rec = run_notebook("03")
    # every hand-built piece equals the library's
    for key in ("rmsnorm_diff", "attention_diff", "swiglu_diff", "mtp_diff"):
        assert rec[key] < 1e-5, key
    assert rec["rope_relative_diff"] < 1e-3          # q_m·k_n depends on m − n only
    assert rec["parity_max_abs_diff"] < 1e-4         # transformers' Qwen2, same weights
    assert rec["params_7b_total"] == 7_833_409_536
    assert rec["params_7b_without_mtp"] == 7_622_619_136
    assert abs(rec["kv_cache_7b_32k_gib"] - 4.5) < 1e-9     # 2·36·8·128·32768·2 bytes
    assert rec["kv_cache_7b_32k_mha_gib"] == 4 * rec["kv_cache_7b_32k_gib"]
    turns = rec["rope_slowest_pair_turns_32k"]
    assert turns["640k"] < turns["10k"] < 1
    pairs = rec["rope_pairs_longer_than_context"]     # 640k keeps more slow pairs over 32K than 10k
    assert pairs["640k@32K"] > pairs["10k@8K"] > pairs["10k@32K"] > 0
    # the closing summary's verdict follows the figures above
    assert rec["architecture_matches"] == (
        max(rec[k] for k in ("rmsnorm_diff", "attention_diff", "swiglu_diff", "mtp_diff")) < 1e-5
        and rec["rope_relative_diff"] < 1e-3 and rec["parity_max_abs_diff"] < 1e-4
        and rec["params_7b_total"] == 7_833_409_536 and rec["params_7b_without_mtp"] == 7_622_619_136)
