import random

import numpy as np
import pytest

from mimo_lite.data.low_value import low_value_documents, sentences_of
from mimo_lite.data.quality import (RULES, curly_bracket, heuristic_verdict, ngram_counts,
                                    too_short, train_tagger)
from mimo_lite.data.reasoning import reasoning_documents
from mimo_lite.data.sources import code_documents, pydoc_documents, stdlib_files
from mimo_lite.data.worked_math import math_documents


def labelled(seed: int):
    rng = random.Random(seed)
    prose = [d["text"] for d in pydoc_documents(79)][seed::2]
    code = [d["text"].decode("utf-8", "replace")[:4000]
            for d in code_documents(stdlib_files(40, rng, tests=False))]
    math = [d["text"] for d in math_documents(80, rng)]
    reasoning = [d["text"] for d in reasoning_documents(40, rng)]
    junk = [d["text"] for d in low_value_documents(80, rng, sentences_of(prose))]
    return {"general": prose, "code": code, "math": math, "synthetic_reasoning": reasoning,
            "low_value": junk}


def test_rules_name_themselves_and_drop_obvious_cases():
    assert heuristic_verdict("word " * 10) == "too_short"
    assert curly_bracket("x = \\boxed{3}") and not curly_bracket("no braces here")
    prose = ("A tokenizer maps text to integers. Each merge joins the most frequent pair of "
             "symbols into a new one, so frequent words become single tokens while rare words "
             "stay split into pieces. Digits are kept apart, one per token, because the model "
             "must add numbers column by column. Special tokens mark the turns of a chat and "
             "the reasoning block that precedes an answer.")
    assert heuristic_verdict(prose) == ""
    assert {r.__name__ for r in RULES} >= {"too_short", "curly_bracket", "repeated_bigram"}
    assert too_short("one two three")


def test_heuristics_drop_math_and_code_but_the_tagger_keeps_them():
    train, test = labelled(0), labelled(1)
    texts = [t for group in train.values() for t in group]
    value = [g != "low_value" for g, group in train.items() for _ in group]
    tagger = train_tagger(texts, value)
    for group in ("math", "code"):
        heuristics_keep = np.mean([heuristic_verdict(t) == "" for t in test[group]])
        tagger_keep = np.mean(tagger.score(test[group]) >= 0.5)
        assert heuristics_keep < 0.5 and tagger_keep > 0.9, (group, heuristics_keep, tagger_keep)
    assert np.mean(tagger.score(test["low_value"]) < 0.5) > 0.9
    assert np.mean(tagger.score(test["general"]) >= 0.5) > 0.8


def test_ngram_features_are_deterministic_shares():
    ids, share = ngram_counts("hello hello world")
    again = ngram_counts("hello hello world")
    assert np.array_equal(ids, again[0]) and share.sum() == pytest.approx(1.0)
    assert len(ngram_counts("")[0]) == 1                     # an empty text still has a bag


def test_tagger_needs_both_classes():
    with pytest.raises(ValueError, match="both high- and low-value"):
        train_tagger(["a", "b"], [True, True])
