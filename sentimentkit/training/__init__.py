"""Data -> artifact: fit and select the default model (`train`), metrics and error analysis
(`evaluate`), fine-tune and export transformers (`transformer`)."""
