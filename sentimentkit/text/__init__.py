"""Text -> features: normalisation and tokenisation (`preprocess`), sentiment lexicons (`lexicon`),
and the TF-IDF + lexicon-cue vectoriser pickled inside model.pkl (`features`)."""
