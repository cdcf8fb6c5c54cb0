"""How the API calls the model: single texts are micro-batched, long jobs are scored in slices."""

import asyncio
from typing import Any

from sentimentkit.serving.base import BasePredictor, text_error

# Every model call happens on the event loop's thread, one call at a time. Not for thread safety: the
# TF-IDF model may be shared between threads (features.py adds new tokens to its cache under a lock,
# and tests it), though the API does not rely on that for any backend. It is because a thread pool would
# not make one worker score faster: the TF-IDF model's per-token work is Python holding the GIL, and
# onnxruntime already spreads each call over its own intra-op threads. A thread hop per call would
# only add latency, and the micro-batcher needs concurrent requests to meet on one thread. More CPUs
# means more workers (`serve --workers N`). The price is that a model call blocks the loop, so long
# jobs (big batches, CSV files) are scored in slices of this many texts, yielding to the loop in
# between so that single-text requests are not held up behind them.
MODEL_SLICE = 64


class MicroBatcher:
    """Dynamic batching of single-text requests within one worker's event loop.

    Every request that reaches the model in the same loop iteration is scored in one
    `predictor.score` call; scoring n short texts together costs far less than n calls (the
    per-call sparse-matrix overhead dominates a single tweet). Nothing waits on a timer: with one
    request in flight the batch is just that request, so light load pays no extra latency.
    """

    def __init__(self, predictor: BasePredictor, max_size: int = 256) -> None:
        self.predictor = predictor
        self.max_size = max_size
        self._pending: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._scheduled = False
        self.batches = self.texts = 0  # how well batching works: texts / batches

    async def score(self, text: str) -> dict[str, Any]:
        """The `predictor.score` record of `text`, computed together with concurrent requests."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending.append((text, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending[: self.max_size], self._pending[self.max_size :]
        self._scheduled = bool(self._pending)
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self.batches += 1
        self.texts += len(batch)
        try:
            records = self.predictor.score([text for text, _ in batch])
        except Exception:  # a text that breaks the model must not fail the requests batched with it
            for text, future in batch:
                self._settle_alone(text, future)
            return
        for (_, future), record in zip(batch, records):
            if not future.done():  # the client may have gone away
                future.set_result(record)

    def _settle_alone(self, text: str, future: asyncio.Future[dict[str, Any]]) -> None:
        try:
            record = self.predictor.score([text])[0]
        except Exception as exc:  # handed to the waiting request, which reports it as a 500
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(record)


async def score_texts(
    p: BasePredictor, texts: list[str], max_chars: int, parts: bool = False
) -> list[dict[str, Any]]:
    """`p.score` of `texts` with this server's character limit as well (an injected predictor may
    have another), on the loop's thread in slices (`model_slices`); one record per text, in order.
    `parts`: each record also holds the text's scored parts."""
    records: list[dict[str, Any]] = []
    for start, stop in model_slices(texts, max_chars):
        if start:
            await asyncio.sleep(0)  # let waiting requests run between slices
        if parts:
            records += p.score(texts[start:stop], max_chars=max_chars, parts=True)
        else:
            records += p.score(texts[start:stop], max_chars=max_chars)
    return records


def model_slices(texts: list[str], max_chars: int) -> list[tuple[int, int]]:
    """(start, stop) of the consecutive parts of `texts` scored in one model call each: every part
    holds MODEL_SLICE texts that can be scored under `max_chars` (the last part fewer), however many
    bad ones lie between them, so each call gets full slices of real work."""
    if len(texts) <= MODEL_SLICE:
        return [(0, len(texts))]
    valid = [i for i, t in enumerate(texts) if text_error(t, max_chars) is None]
    cuts = [0, *valid[MODEL_SLICE::MODEL_SLICE], len(texts)]
    return list(zip(cuts, cuts[1:]))
