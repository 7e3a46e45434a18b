import pytest

from mimo_lite.config import PRESETS
from mimo_lite.profile import DOMAINS

pytestmark = pytest.mark.notebook


def test_notebook_02_trains_the_tokenizer_and_measures_it(run_notebook):
    r = run_notebook("02")
    assert r["vocab_size"] == r["model_vocab_size"] == PRESETS["smoke"]["vocab_size"]
    assert r["hand_bpe_merges_agree"] == 30                 # the by-hand loop is the algorithm
    for domain in DOMAINS:
        assert r["bytes_per_token"][domain] > 1.3 * r["char_level_bytes_per_token"][domain]
        by_vocab = [r["bytes_per_token_by_vocab"][v][domain]
                    for v in sorted(r["bytes_per_token_by_vocab"], key=int)]
        assert by_vocab == sorted(by_vocab)                  # more merges, longer tokens
    assert r["chunkings_of_4_digit_numbers"]["split digits"] == 1
    assert r["share_with_multi_digit_token"]["split digits"] == 0
    assert r["share_with_multi_digit_token"]["plain BPE"] > 0
    assert r["special_tokens_single_ids"] and r["eos_token"] == "<|im_end|>"
    assert r["embedding_share"]["MiMo-7B"] == pytest.approx(0.1586, abs=1e-3)
    assert r["embedding_share"]["kit (smoke)"] > r["embedding_share"]["MiMo-7B"]
    # the three-stage mixture, packed with this tokenizer
    assert r["max_share_error"] <= 0.01
    assert r["max_gap_rows"] < 1.0                         # every domain within one row of w·n, at every n
    shares = r["stage_shares_measured"]
    assert shares["stage 1"]["synthetic_reasoning"] == 0
    assert shares["stage 2"]["math"] + shares["stage 2"]["code"] == pytest.approx(0.7, abs=0.01)
    assert shares["stage 3"]["synthetic_reasoning"] == pytest.approx(0.1, abs=0.01)
    assert r["seq_len"]["3"] > r["seq_len"]["1"] == r["seq_len"]["2"]
    assert all(tokens > 0 for tokens in r["tokens_per_stage"].values())
    assert r["tokens_by_stage_domain"]["stage3"]["synthetic_reasoning"] > 0
    think = r["think_rows"]                                # stage 1–2 rows hold no <think> token
    assert sum(think["stage1"].values()) == sum(think["stage2"].values()) == 0
    assert think["stage3"]["synthetic_reasoning"] > 0 and think["control"]["synthetic_reasoning"] > 0
    assert sum(v for d, v in think["stage3"].items() if d != "synthetic_reasoning") == 0
