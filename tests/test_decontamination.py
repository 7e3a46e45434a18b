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


def test_contaminated_marks_the_documents_to_drop_so_that_overlap_becomes_zero():
    from mimo_lite.tasks.decontamination import contaminated

    problem = " ".join(f"w{i}" for i in range(20))                  # 20 words: five 16-grams
    docs = ["intro " + " ".join(f"w{i}" for i in range(3, 19)) + " outro",   # one 16-gram inside
            " ".join(f"w{i}" for i in range(15)),                            # 15 words: too short
            "What is 2 + 3 ? asked the teacher"]                             # holds a short prompt
    hit = contaminated(docs, [problem, "What is 2 + 3?"], n=16)
    assert hit == [True, False, True]
    kept = [d for d, h in zip(docs, hit) if not h]
    assert ngram_overlap([problem, "What is 2 + 3?"], kept, n=16) == [0.0, 0.0]


def test_corpus_build_removes_documents_sharing_a_16gram_with_heldout_problems():
    from mimo_lite.data.corpus import decontaminate
    from mimo_lite.data.documents import document

    prompt = "Write a function `total(xs)` that returns the sum of the even numbers in the list xs please"
    docs = [document(f"Some text. {prompt} More text.", "s", "general"),
            document("Unrelated text about sums of numbers.", "s", "math")]
    kept, report = decontaminate(docs, [prompt])
    assert [d["domain"] for d in kept] == ["math"]
    assert report["removed"] == 1 and report["removed_by_domain"] == {"general": 1}
