"""The pretraining corpus (notebook 01: sources, quality, dedup) and its three-stage mixture
(packed in notebook 02, once the tokenizer exists).

Entry points for the rest of the kit:
  ensure_corpus(profile)                    documents (train / heldout) and the build report
  stage_sampler(profile, stage)             packed token rows of stage 1, 2 or 3, resumable
  heldout_sequences(profile, domain, L)     held-out rows of one domain, for evaluation
  packed_counts(profile)                    rows and tokens per stage and domain
The tokenizer trained on this corpus is `mimo_lite.tokenizer.ensure_tokenizer(profile)`.
"""

from .corpus import Corpus, ensure_corpus
from .mixture import StageSampler, ensure_packed, heldout_sequences, packed_counts, stage_sampler

__all__ = ["Corpus", "StageSampler", "ensure_corpus", "ensure_packed", "heldout_sequences",
           "packed_counts", "stage_sampler"]
