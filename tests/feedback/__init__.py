"""Tests of sentimentkit.feedback (store, formats, review queue, CLI)."""
