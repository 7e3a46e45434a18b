import pytest


@pytest.mark.notebook
def test_notebook_05_inference(run_notebook):
    r = run_notebook("05")
    # KV cache: MiMo-7B's 2 × 36 layers × 8 KV heads × 128 × 2 bytes; decoding unchanged by the cache
    assert r["kv_bytes_per_token_mimo_7b"] == 2 * 36 * 8 * 128 * 2
    assert r["kv_gib_mimo_7b_32k"] == pytest.approx(r["kv_bytes_per_token_mimo_7b"] * 32768 / 2**30)
    assert r["cache_same_tokens"] is True
    assert r["tok_s_cache"] > 0 and r["tok_s_no_cache"] > 0
    assert r["cache_speedup"] == pytest.approx(r["tok_s_cache"] / r["tok_s_no_cache"])
    # sampling: an accuracy per setting, greedy replies of some length
    assert set(r["accuracy_by_sampling"]) == {"greedy", "τ 0.6, top-p 0.95", "τ 1.0", "τ 1.0, top-k 2"}
    assert all(0 <= a <= 1 for a in r["accuracy_by_sampling"].values()) and r["mean_completion_tokens"] > 0
    # continuous batching: same completions as static batching, in fewer steps, rows busier
    assert r["batching_same_outputs"] is True
    assert r["batching_steps"]["continuous"] < r["batching_steps"]["static"]
    assert r["batching_rows_busy"]["continuous"] > r["batching_rows_busy"]["static"]
    # the closing note's verdicts are the ones its figures allow
    assert r["cache_pays"] == (r["cache_same_tokens"] and r["cache_speedup"] > 1)
    assert r["batching_fewer_steps"] == (r["batching_steps"]["continuous"] < r["batching_steps"]["static"])
