"""The long-context probe tells a model that can copy across d tokens from one that cannot."""

from types import SimpleNamespace

import pytest
import torch

from mimo_lite.eval.long_context import copy_probe, plant, question_reading

VOCAB = 40


class Copier(torch.nn.Module):
    """By construction: at position t, predict the token that followed the latest earlier
    occurrence of x_t no more than `window` tokens back (an induction head); else no preference."""

    def __init__(self, window: int | None = None):
        super().__init__()
        self.window = window
        self.unused = torch.nn.Parameter(torch.zeros(1))      # the probe reads the device from it

    def forward(self, ids):
        B, L = ids.shape
        logits = torch.zeros(B, L, VOCAB)
        for b in range(B):
            for t in range(L):
                lowest = 0 if self.window is None else max(0, t - self.window)
                for j in range(t - 1, lowest - 1, -1):
                    if ids[b, j] == ids[b, t]:
                        logits[b, t, ids[b, j + 1]] = 10.0
                        break
        return SimpleNamespace(logits=logits)


FILLER = torch.zeros(4, 90, dtype=torch.int64)          # filler token 0; spans never use it
SPAN_TOKENS = torch.arange(1, VOCAB)


def test_plant_writes_the_span_twice_at_the_distance():
    ids = plant(torch.zeros(40, dtype=torch.int64), torch.tensor([7, 8, 9]), distance=20, start=5)
    assert ids.tolist()[5:8] == [7, 8, 9] and ids.tolist()[25:28] == [7, 8, 9]
    assert len(ids) == 28 and ids[8:25].eq(0).all()
    with pytest.raises(ValueError, match="too short"):
        plant(torch.zeros(20, dtype=torch.int64), torch.tensor([1, 2]), distance=30, start=0)


def test_probe_separates_a_copier_from_a_model_that_cannot_copy():
    distances = [16, 48]
    full = copy_probe(Copier(), FILLER, SPAN_TOKENS, distances, span_len=6, start=4)
    short = copy_probe(Copier(window=32), FILLER, SPAN_TOKENS, distances, span_len=6, start=4)
    for d in distances:
        assert full[d]["repeat_top1"] > 0.95 and full[d]["repeat_loss"] < 0.01
        assert full[d]["first_top1"] < 0.2                       # nothing to copy the first time
    assert short[16]["repeat_top1"] > 0.95                       # within its reach
    assert short[48]["repeat_top1"] < 0.2                        # beyond it: no better than the first
    assert short[48]["repeat_loss"] == pytest.approx(short[48]["first_loss"], abs=0.5)


def test_loss_by_position_averages_each_bucket():
    from mimo_lite.eval.long_context import loss_by_position

    class Position:                       # predicts token p+1 perfectly only at positions < 4
        def __init__(self):
            self.training = False
            self.w = torch.nn.Parameter(torch.zeros(1))

        def parameters(self):
            return iter([self.w])

        def eval(self):
            return self

        def train(self, mode=True):
            return self

        def __call__(self, ids):
            logits = torch.zeros(*ids.shape, 5)
            nxt = torch.roll(ids, -1, dims=1)
            logits[:, :4].scatter_(2, nxt[:, :4, None], 50.0)
            return type("Out", (), {"logits": logits})()

    rows = torch.arange(10).repeat(3, 1) % 5
    near, far = loss_by_position(Position(), rows, [0, 3, 8])
    assert near < 1e-6                                         # positions 0-2: right with certainty
    assert far == pytest.approx((1 * 0 + 4 * torch.log(torch.tensor(5.0)).item()) / 5, rel=1e-4)
    with pytest.raises(ValueError, match="edges"):
        loss_by_position(Position(), rows, [0, 12])


class Chars:
    """One token per character (ids below 128): enough of a tokenizer for `question_reading`."""

    def encode(self, text, add_special_tokens=False):
        return [ord(c) % 128 for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids)


class Cache(torch.nn.Module):
    """By construction: at position t, favour every token seen in the last `window` tokens
    (all of them when None), the more the more often; a model with window 0 reads nothing."""

    def __init__(self, window: int | None = None):
        super().__init__()
        self.window = window
        self.unused = torch.nn.Parameter(torch.zeros(1))

    def forward(self, ids):
        B, L = ids.shape
        logits = torch.zeros(B, L, 128)
        for t in range(L):
            lowest = 0 if self.window is None else max(0, t + 1 - self.window)
            for b in range(B):
                logits[b, t] += torch.bincount(ids[b, lowest:t + 1], minlength=128).float()
        return SimpleNamespace(logits=logits)


def test_question_reading_tells_a_model_that_reads_its_question_from_one_that_cannot():
    filler = torch.full((3, 120), ord("~"), dtype=torch.int64)      # no digits in the haystack
    blind = question_reading(Cache(window=0), Chars(), [0, 100], filler, n=6)
    for d in (0, 100):
        assert blind[d]["gain"] == 0 and blind[d]["own_loss"] == blind[d]["other_loss"]
        assert blind[d]["own_loss"] == pytest.approx(torch.log(torch.tensor(128.0)).item())
    reader = question_reading(Cache(), Chars(), [0, 100], filler, n=16)
    near = question_reading(Cache(window=60), Chars(), [0, 100], filler, n=16)
    for d in (0, 100):                                  # own numbers in view: the digits are cheaper
        assert reader[d]["gain"] > reader[d]["ci95"] > 0
    assert near[0]["gain"] > near[0]["ci95"]            # within its window it reads the question
    assert near[100]["gain"] == 0                       # 100 tokens of filler put it out of view
    with pytest.raises(ValueError, match="at least 100 tokens"):
        question_reading(Cache(), Chars(), [100], filler[:, :50], n=6)
    with pytest.raises(ValueError, match="n ≥ 2"):
        question_reading(Cache(), Chars(), [0], n=1)
