from mimo_lite.tasks.decontamination import decontamination_report, ngram_overlap, ngrams


def test_ngrams_are_word_level_and_case_blind():
    assert ngrams("A b c", 2) == ngrams("a B  c", 2)
    assert len(ngrams("one two three four", 2)) == 3
    assert len(ngrams("short", 5)) == 1 and ngrams("", 3) == set()


def test_overlap_counts_the_share_of_ngrams_found():
    texts = ["the quick brown fox jumps", "What is 3 + 5?", "nothing in common here at all"]
    corpus = ["a quick brown fox ran", "Quiz: what is 3 + 5? It is 8."]
    # trigrams "the quick brown", "quick brown fox", "brown fox jumps": only the second is found
    overlap = ngram_overlap(texts, corpus, n=3)
    assert overlap[0] == 1 / 3
    # "what is 3 + 5 ?" has 6 words: with n = 16 it is one gram, found inside the second document
    assert ngram_overlap(texts, corpus, n=16)[1] == 1.0
    assert overlap[2] == 0.0


def test_report_per_corpus_including_missing_ones():
    problems = [{"id": "a", "prompt": "What is 3 + 5?"}, {"id": "b", "prompt": "What is 4 + 4?"}]
    report = decontamination_report(problems, {"web": iter(["so what is 3 + 5? eight"]),
                                               "sft": None}, n=16)
    assert report["corpora"]["web"]["contaminated"] == 1
    assert report["corpora"]["web"]["examples"] == ["a"]
    assert report["corpora"]["sft"] == {"status": "not available"}
