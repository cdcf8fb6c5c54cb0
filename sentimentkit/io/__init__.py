"""The I/O floor: every table read, every file written, every message printed passes through here.

- `tables`: the one table reader (CSV/TSV/XLSX/Parquet), its encoding and column rules.
- `write`: the one output writer (refuses inputs, atomic, standard output, special files).
- `formula`: the formula guard for spreadsheet outputs.
- `columns`: output column names and how an input makes room for them.
- `storage`: local paths or Azure Blob URIs through fsspec.
- `redact`: the one redaction rule for everything printed (messages, logs, answers, reports).

It imports nothing above it in the package.
"""
