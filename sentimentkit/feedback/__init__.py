"""Feedback: people correcting the model for their own domain (issue 22, design "Round 3").

`review` chooses which predictions a person should label first (`select_for_review`: uncertain,
diverse, random), as pure functions over texts and probabilities. It sits above `serving` and
`training` (it may use what they offer) and below the front ends (`api`, `ui`, `cli`) that show the
queue; nothing below it imports it.
"""
