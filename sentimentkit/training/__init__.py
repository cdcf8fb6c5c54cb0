"""Data -> artifact: fit and select the default model (`train`), metrics and error analysis
(`evaluate`), the reference profile stored in the card (`profile`), fine-tune and export transformers
(`transformer`). Nothing here imports `mlops`: logging and registering a trained model is
`mlops.tracking`."""
