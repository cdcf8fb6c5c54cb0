"""Text -> features: normalisation and tokenisation (`preprocess`), sentiment lexicons (`lexicon`),
and the TF-IDF + lexicon-cue vectoriser pickled inside model.pkl (`features`), with its look-up
engine (`_lookup`: the per-token and per-chunk caches) and compiled inner loops (`_speedups.c`)."""
