"""The look-up engine behind `features.TweetVectorizer`: what is computed once per distinct token or
chunk of raw text, cached, and found again by whole-array look-ups.

- `TokenTable`: per distinct token an integer id, its feature ids (unigram and char n-grams) and its
  lexicon valences, in flat arrays; the bigram vocabulary keyed by token-id pairs (`KeyIndex`).
- `ChunkIds`: per whitespace-free chunk of raw text the token ids it stands for, so a batch of raw
  strings never builds token strings for text it has seen (`TokenTable.text_ids`).
- `KeyIndex`: int64 keys -> int32 values, an open-addressing hash table probed with NumPy.
- `CharGrams`: scikit-learn's `char_wb` n-gram ids of many new words at once, as integer keys.
- `lookup`, `gather`, `grown`: the array helpers they share; `set_cache_limits` bounds the caches.

It knows nothing of TF-IDF: the estimator hands `TokenTable` a function that computes new tokens'
entries (`TweetVectorizer._token_entries`) and its word vocabulary. Everything here is memoisation, so
no cache size, drop or rebuild changes a result.

Compiled inner loops: `_speedups.c` (built by `pip install -e .`; optional) is loaded here, once, for
both modules: `compiled()` is the estimator's switch too. Without it (no C compiler, or
SENTIMENTKIT_PURE_PYTHON=1, or a test setting this module's `_speedups` to None) the NumPy code does
the same.

Threading: a fitted `TweetVectorizer` (and so one `Predictor`) may be shared by any number of
threads. Its only mutable state is these caches: the per-token (and per-chunk) table grows under a
lock and publishes a token in the index only after its entry is complete, in arrays that are replaced
(never shrunk or rewritten) when they grow, so lock-free readers see complete entries; the lazily
built pieces (token table, char n-gram index, IDF vector) may be built twice by racing threads, each
copy complete and equal; preprocess's chunk cache is a dict used with single atomic operations. The
compiled loops hold the GIL for each call, read the tables only, and bounds-check every index they
follow, so a reader that meets an entry it cannot verify (arrays of different versions) treats the
chunk as missing and asks again under the lock. Each call's matrices are its own. This relies on
CPython's GIL making those dict and attribute operations atomic. `tests/test_features.py` checks
that 8 threads sharing one model on unseen texts give exactly the single-threaded probabilities.
Threads do not make scoring faster (the GIL); they make it safe to share one model between a
server's threads.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from itertools import chain
from types import ModuleType

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from sentimentkit.config import pure_python_from_env
from sentimentkit.text.preprocess import chunk_plain_tokens, chunk_tokens, clean_text, set_chunk_cache_limit

# New tokens -> (their feature ids concatenated, how many each, valences (tokens, lexicons)).
TokenEntries = Callable[[list[str]], tuple[np.ndarray, np.ndarray, np.ndarray]]

try:  # the compiled inner loops (setup.py builds them; optional: the NumPy code below does the same)
    from sentimentkit.text import _speedups
except ImportError:  # pragma: no cover - depends on the build
    _speedups = None
# Settings.pure_python, read once at import (not via Settings.from_env(): that would validate every
# variable on each import of the text floor): force the NumPy code (tests compare the two).
if pure_python_from_env():
    _speedups = None

_TOKEN_CACHE_MAX = 500_000
_CHUNK_IDS_MAX = 400_000
_FEW_WORDS = 8
EMPTY = np.zeros(0, dtype=np.int32)
_WHITESPACE = re.compile(r"\s")  # the characters str.split() splits on (both use Py_UNICODE_ISSPACE)
_PASS, _CLEARS, _OPENS = 0, 1, 2  # how a chunk moves the negation scope state (see ChunkIds)


def compiled() -> ModuleType | None:
    """The compiled inner loops, or None where the NumPy code runs (see the module docstring)."""
    return _speedups


def set_cache_limits(tokens: int | None = None, chunks: int | None = None) -> None:
    """Bound this process's memoisation caches: `tokens` new distinct tokens in a vectorizer's
    token table, `chunks` entries in the preprocessing chunk cache (None: leave as is). A full
    cache is dropped and refills, so a limit trades speed for memory and never changes a result
    (both caches are pure memoisation). For processes scoring millions of distinct texts."""
    global _TOKEN_CACHE_MAX
    if tokens is not None:
        if tokens < 1:
            raise ValueError("tokens must be at least 1")
        _TOKEN_CACHE_MAX = tokens
    if chunks is not None:
        set_chunk_cache_limit(chunks)
        global _CHUNK_IDS_MAX
        _CHUNK_IDS_MAX = chunks


def lookup(keys: list[str], index: dict[str, int]) -> np.ndarray:
    """`index[key]` of each key as an int64 array, -1 where a key is missing."""
    if _speedups is not None:
        return np.frombuffer(_speedups.lookup(keys, index), dtype=np.int64)
    get = index.get
    return np.fromiter([get(k, -1) for k in keys], dtype=np.int64, count=len(keys))


def gather(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """`flat[starts[i] : starts[i] + lengths[i]]` for every i, concatenated (one vectorised gather)."""
    total = int(lengths.sum())
    if total == 0:
        return flat[:0]
    ends = np.cumsum(lengths)
    # Position k of the output reads flat[starts[i] + (k - first output position of piece i)].
    shift = np.repeat(starts - (ends - lengths), lengths)
    shift += np.arange(total)
    return flat[shift]


class KeyIndex:
    """Non-negative int64 keys -> int32 values, looked up many at a time: an open-addressing hash
    table (multiplicative hashing, linear probing, at most a quarter full) probed with whole-array
    NumPy operations, one round per probe step (after the first, only over the queries still
    probing). About 2.5 times as fast as sorting the queries and binary searching a sorted key
    array, its predecessor here (15k queries, 80k keys); costs 12 bytes per slot."""

    _MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, odd
    _EMPTY = -1

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        self.bits = max(4, int(len(keys) * 4 - 1).bit_length())  # 2^bits >= 4 * len(keys)
        self.mask = (1 << self.bits) - 1
        self.keys = np.full(1 << self.bits, self._EMPTY, dtype=np.int64)
        self.values = np.zeros(1 << self.bits, dtype=np.int32)
        slot = self._slots(keys)
        pending = np.arange(len(keys))
        while len(pending):  # each round, every free slot asked for takes one of its askers
            wanted = slot[pending]
            free = self.keys[wanted] == self._EMPTY
            taken, first = np.unique(wanted[free], return_index=True)
            winners = pending[free][first]
            self.keys[taken], self.values[taken] = keys[winners], values[winners]
            pending = np.setdiff1d(pending, winners, assume_unique=True)
            slot[pending] = (slot[pending] + 1) & self.mask

    def _slots(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * self._MULTIPLIER) >> np.uint64(64 - self.bits)).astype(np.int64)

    def get(self, queries: np.ndarray) -> np.ndarray:
        """The value of each query key, -1 where it is not a key."""
        slot = self._slots(queries)
        found = self.keys[slot]
        hit = found == queries
        out = np.where(hit, self.values[slot], -1).astype(np.int64)
        active = np.flatnonzero(~hit & (found != self._EMPTY))  # collided: probe the next slots
        while len(active):
            slot_a = (slot[active] + 1) & self.mask
            slot[active] = slot_a
            found = self.keys[slot_a]
            hit = found == queries[active]
            out[active[hit]] = self.values[slot_a[hit]]
            active = active[~hit & (found != self._EMPTY)]
        return out


def grown(array: np.ndarray, needed: int) -> np.ndarray:
    """A copy of `array` at least twice as long (and longer than `needed`), zero-filled at the end."""
    out = np.zeros((max(2 * len(array), needed + 1), *array.shape[1:]), dtype=array.dtype)
    out[: len(array)] = array
    return out


class CharGrams:
    """scikit-learn's `char_wb` n-gram ids of many words at once, without a Python loop per n-gram.

    Every vocabulary n-gram becomes an integer key (its length, then each character's index in the
    vocabulary's alphabet in a few bits), indexed once. A batch of words is encoded the same way,
    window by window, and matched in a hash table (`KeyIndex`). For a word without whitespace the char_wb
    n-grams are the windows of " word " of every size in the range up to its padded length (sklearn
    stops at the padded word itself); words with whitespace, and vocabularies whose alphabet is too
    large for the keys, or (without the compiled loops) batches of only a few words, go through
    sklearn's own analyzer. With the compiled loops, `_speedups.char_gram_ids` does the windows and
    the hash-table probes word by word. `tests/test_features.py` checks the ids against sklearn's
    analyzer.
    """

    def __init__(self, char_vectorizer: TfidfVectorizer, analyzer: Callable[[str], list[str]]) -> None:
        self.vocabulary = char_vectorizer.vocabulary_
        self.analyzer = analyzer
        self.min_n, self.max_n = char_vectorizer.ngram_range
        alphabet = sorted(set("".join(self.vocabulary)))
        self.bits = max(1, len(alphabet).bit_length())  # codes 1..len(alphabet); 0 = not in it
        self.length_shift = self.bits * self.max_n
        self.vectorised = self.length_shift + self.max_n.bit_length() <= 63
        self.code_of = np.zeros(max(map(ord, alphabet), default=0) + 1, dtype=np.int64)
        self.code_of[[ord(c) for c in alphabet]] = np.arange(1, len(alphabet) + 1)
        grams = list(self.vocabulary)
        if not self.vectorised:
            return
        codes, starts, lengths = self._encode(grams)
        keys = np.zeros(len(grams), dtype=np.int64)
        for n in range(1, self.max_n + 1):
            of_n = lengths == n
            keys[of_n] = self._keys(codes, starts[of_n], n)
        self.vectorised = len(keys) > 0
        self.index = KeyIndex(keys, np.fromiter(map(self.vocabulary.__getitem__, grams), dtype=np.int32))

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Alphabet codes of the texts joined, each text's start, each text's length."""
        joined = "".join(texts).encode("utf-32-le", "surrogatepass")  # one code point per 4 bytes
        points = np.frombuffer(joined, dtype=np.uint32).astype(np.int64)
        codes = self.code_of[np.minimum(points, len(self.code_of) - 1)]
        codes[points >= len(self.code_of)] = 0
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        return codes, np.cumsum(lengths) - lengths, lengths

    def _keys(self, codes: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
        """Keys of the n-character windows at `starts`; a window with a code-0 character has a
        zero in its key where every vocabulary key of that length has a non-zero code."""
        key = np.full(len(starts), n << self.length_shift, dtype=np.int64)
        for k in range(n):
            key |= codes[starts + k] << (self.bits * k)
        return key

    def ids(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(index into `words`, n-gram id) of every in-vocabulary char_wb n-gram of the words."""
        if not self.vectorised or (len(words) <= _FEW_WORDS and _speedups is None):
            plain = []  # a few words (single-text calls): the analyzer's loop costs less than the set-up
        elif _WHITESPACE.search("".join(words)) is None:  # no word has whitespace (str.split's)
            plain = [i for i, w in enumerate(words) if w and len(w) + 2 >= self.min_n]
        else:
            plain = [i for i, w in enumerate(words) if w.split() == [w] and len(w) + 2 >= self.min_n]
        owners, ids = [], []
        if plain and _speedups is not None:
            chosen = [words[i] for i in plain]
            windows = (self.max_n - self.min_n + 1) * (sum(map(len, chosen)) + 2 * len(chosen))
            owner, found = np.empty(windows, dtype=np.int64), np.empty(windows, dtype=np.int32)
            index = self.index
            n = _speedups.char_gram_ids(
                chosen, self.code_of, self.bits, self.length_shift, self.min_n, self.max_n,
                index.keys, index.values, index.bits, owner, found,
            )  # fmt: skip
            owners.append(np.asarray(plain)[owner[:n]])
            ids.append(found[:n])
        elif plain:
            codes, starts, lengths = self._encode([f" {words[i]} " for i in plain])
            owner_of_char = np.repeat(np.arange(len(plain)), lengths)
            ends = starts + lengths
            for n in range(self.min_n, self.max_n + 1):
                # every window of size n inside one padded word; sizes above the word's stop there
                first = np.flatnonzero(ends[owner_of_char] - np.arange(len(codes)) >= n)
                found = self.index.get(self._keys(codes, first, n))
                hit = found >= 0
                owners.append(np.asarray(plain)[owner_of_char[first[hit]]])
                ids.append(found[hit].astype(np.int32))
        rest = np.ones(len(words), dtype=bool)
        rest[plain] = False
        for i in np.flatnonzero(rest).tolist():
            found = [self.vocabulary[g] for g in self.analyzer(words[i]) if g in self.vocabulary]
            owners.append(np.full(len(found), i, dtype=np.int64))
            ids.append(np.asarray(found, dtype=np.int32))
        if not ids:
            return np.zeros(0, dtype=np.int64), EMPTY
        return np.concatenate(owners), np.concatenate(ids)


class ChunkIds:
    """Per whitespace-free chunk of raw text, the ids (in one `TokenTable`) of its tokens when
    entered outside a negation scope, when entered inside one (computed when first needed: start
    -1), and how it leaves the scope state (_PASS, _CLEARS, _OPENS). Grown under the token table's
    lock with the same rules: arrays replaced when they grow, an entry published in `index` (or, for
    a negated variant, by its start) only when complete. Dropped whole when it grows too large."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []
        self.start = np.zeros((1024, 2), dtype=np.int64)
        self.length = np.zeros((1024, 2), dtype=np.int64)
        self.kind = np.zeros(1024, dtype=np.int8)
        self.flat = np.zeros(16384, dtype=np.int64)
        self.used = 0
        # With the compiled loops, `index` is mirrored in a table they can read without making a
        # string per chunk (see chunk_lookup in _speedups.c): (hash, id + 1) slots, at most half
        # full, over the chunks' code points in one arena; `where` is each id's (offset, length).
        self.compiled = _speedups  # kept for this object's life (tests switch the module's off)
        self.slots = np.zeros((1024, 2), dtype=np.int64)
        self.where = np.zeros((1024, 2), dtype=np.int64)
        self.points = np.zeros(16384, dtype=np.uint32)
        self.n_points = 0

    def add(self, table: TokenTable, chunks: list[str], looked_up: int) -> None:
        """Enter new chunks with their plain token ids (the negated ones wait until needed);
        `looked_up` is how many chunks there were when they were found missing."""
        new = list(dict.fromkeys(chunks))
        entries = [chunk_plain_tokens(c) for c in new]
        plain = [tokens for tokens, _ in entries]
        tids = table.ids(list(chain.from_iterable(plain)))  # enters new tokens (takes the lock)
        lengths = np.fromiter(map(len, plain), dtype=np.int64, count=len(plain))
        kinds = [_PASS if after is None else _OPENS if after else _CLEARS for _, after in entries]
        with table._lock:
            # chunks entered by another thread since `looked_up` was read are dropped from `new`
            keep = range(len(new))
            if len(self.names) != looked_up:
                keep = [i for i, c in enumerate(new) if c not in self.index]
            if len(keep) < len(new):
                tids = gather(tids, (np.cumsum(lengths) - lengths)[keep], lengths[keep])
                lengths, new, kinds = lengths[keep], [new[i] for i in keep], [kinds[i] for i in keep]
            if not new:
                return
            first, stop = len(self.names), len(self.names) + len(new)
            if stop > len(self.kind):
                self.start = grown(self.start, stop)
                self.length = grown(self.length, stop)
                self.kind = grown(self.kind, stop)
            at = self._append(tids)
            self.start[first:stop, 0] = at + np.cumsum(lengths) - lengths
            self.length[first:stop, 0] = lengths
            self.start[first:stop, 1] = -1
            self.kind[first:stop] = kinds
            self.names.extend(new)
            if self.compiled is not None:
                self._mirror(new, first)
            self.index.update(zip(new, range(first, stop)))  # last: readers see whole entries

    def _mirror(self, new: list[str], first: int) -> None:
        """Enter new chunks (ids from `first`) in the compiled loops' table; the caller holds the
        lock. Arrays are filled before the slots that point into them; a grown slot array is
        filled whole before it replaces the old one."""
        stop = first + len(new)
        points = np.frombuffer("".join(new).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        lengths = np.fromiter(map(len, new), dtype=np.int64, count=len(new))
        at, end = self.n_points, self.n_points + len(points)
        if end > len(self.points):
            self.points = grown(self.points, end)
        self.points[at:end] = points
        self.n_points = end
        if stop > len(self.where):
            self.where = grown(self.where, stop)
        self.where[first:stop, 0] = at + np.cumsum(lengths) - lengths
        self.where[first:stop, 1] = lengths
        if 2 * stop > len(self.slots):
            slots = np.zeros((1 << (4 * stop - 1).bit_length(), 2), dtype=np.int64)  # a quarter full
            self.compiled.chunk_insert(self.names[:first], 0, slots)
            self.compiled.chunk_insert(new, first, slots)
            self.slots = slots
        else:
            self.compiled.chunk_insert(new, first, self.slots)

    def add_negated(self, table: TokenTable, cids: list[int]) -> None:
        """Fill in the token ids of chunks as entered inside a negation scope."""
        negated = [chunk_tokens(self.names[c])[1] for c in cids]
        tids = table.ids(list(chain.from_iterable(negated)))
        lengths = np.fromiter(map(len, negated), dtype=np.int64, count=len(negated))
        with table._lock:
            at = self._append(tids)
            self.length[cids, 1] = lengths
            self.start[cids, 1] = at + np.cumsum(lengths) - lengths  # last: the start publishes

    def _append(self, tids: np.ndarray) -> int:
        """Append token ids to the flat buffer (the caller holds the lock); where they start."""
        start, end = self.used, self.used + len(tids)
        if end > len(self.flat):
            self.flat = grown(self.flat, end)
        self.flat[start:end] = tids
        self.used = end
        return start


class TokenTable:
    """Everything computed per distinct token, once: an integer id, its feature ids, its lexicon
    valences; plus the bigram vocabulary keyed by token-id pairs for vectorised look-up.
    Not pickled: rebuilt lazily by its vectorizer (and dropped when it is `full`).

    `entries` computes new tokens' entries (`TweetVectorizer._token_entries`); the two-word entries
    of `word_vocabulary` (empty for a unigram model) are the bigrams `bigrams` finds.
    """

    def __init__(self, entries: TokenEntries, n_lexicons: int, word_vocabulary: Mapping[str, int]) -> None:
        self.entries = entries
        # Servers share one model across threads (Streamlit sessions, API thread pool): adding
        # tokens happens under this lock; look-ups need none (see the module docstring).
        self._lock = threading.Lock()
        self.index: dict[str, int] = {}
        # Per token id: where its feature ids start in the flat buffer, how many, its valences.
        # All grown by doubling, so a new token costs O(1) amortised (single-text calls add tokens
        # often); a grown array is a new copy, so a reader's older reference stays valid.
        self._starts = np.zeros(1024, dtype=np.int64)
        self._n_feats = np.zeros(1024, dtype=np.int64)
        self._vals = np.zeros((1024, n_lexicons), dtype=np.float32)
        self._flat = np.zeros(16384, dtype=np.int32)
        self._used = 0
        self.chunks = ChunkIds()  # raw-text chunks -> token ids of this table (see text_ids)
        pairs, ids = [], []
        for gram, j in word_vocabulary.items():
            parts = gram.split(" ")
            if len(parts) == 2:
                pairs += parts
                ids.append(j)
        tids = self.ids(pairs)
        keys = (tids[0::2] << 32) | tids[1::2]
        self.bigram_index = KeyIndex(keys, np.asarray(ids, dtype=np.int32)) if len(ids) else None
        self.base = len(self.index)  # tokens entered for the bigram vocabulary, before any text

    @property
    def full(self) -> bool:
        """Whether the table has grown past the token limit (`set_cache_limits`). Only the tokens
        added since it was built count (it starts with the bigram vocabulary's tokens), so a small
        limit cannot rebuild it on every call."""
        return len(self.index) - self.base > _TOKEN_CACHE_MAX

    def ids(self, tokens: list[str]) -> np.ndarray:
        """Token ids (new tokens get their entries computed now, all together)."""
        found = lookup(tokens, self.index)
        missing = np.flatnonzero(found < 0).tolist()
        if missing:
            new = [tokens[k] for k in missing]
            with self._lock:
                self._add(new)
            found[missing] = lookup(new, self.index)
        return found

    def _add(self, tokens: list[str]) -> None:
        """Enter the tokens that are not in the index yet (the caller holds the lock)."""
        new = [t for t in dict.fromkeys(tokens) if t not in self.index]  # another thread's, maybe
        if not new:
            return
        feats, lengths, vals = self.entries(new)
        first, stop = len(self.index), len(self.index) + len(new)
        if stop > len(self._n_feats):
            self._starts = grown(self._starts, stop)
            self._n_feats = grown(self._n_feats, stop)
            self._vals = grown(self._vals, stop)
        end = self._used + len(feats)
        if end > len(self._flat):
            self._flat = grown(self._flat, end)
        self._flat[self._used : end] = feats
        self._starts[first:stop] = self._used + np.cumsum(lengths) - lengths
        self._n_feats[first:stop] = lengths
        self._vals[first:stop] = vals
        self._used = end
        self.index.update(zip(new, range(first, stop)))  # last: lock-free readers see whole entries

    def text_ids(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """All token ids of `texts` in order, and each text's number of tokens: the ids of
        `preprocess.tokenize` of each text, without building token strings.

        Texts are split into whitespace-free chunks once (as `tokenize` does); each distinct chunk's
        token ids are cached (`ChunkIds`), in both negation variants, with the way it moves the
        scope state. The state entering each chunk is then computed for the whole batch at once: it
        is set by the last chunk before it in the same text that opens or clears a scope.
        """
        chunks = self.chunks
        if len(chunks.index) > _CHUNK_IDS_MAX:  # bounded memory: start a new one (tokens stay)
            chunks = self.chunks = ChunkIds()
        looked_up = len(chunks.names)
        if _speedups is not None and chunks.compiled is not None:  # the same, compiled
            found, counts, new = _speedups.chunk_lookup(
                texts, clean_text, chunks.slots, chunks.where, chunks.points
            )
            cids, n_chunks = np.frombuffer(found, dtype=np.int64), np.frombuffer(counts, dtype=np.int64)
            missing = np.flatnonzero(cids < 0)
        else:
            cleaned = [clean_text(t) for t in texts]
            # no list per text: lists that stay alive make the cyclic GC run (see tokenize_many)
            n_chunks = np.fromiter(map(len, map(str.split, cleaned)), dtype=np.int64, count=len(cleaned))
            flat = " ".join(cleaned).split()
            cids = lookup(flat, chunks.index)
            missing = np.flatnonzero(cids < 0)
            new = [flat[k] for k in missing.tolist()]
        if len(missing):
            chunks.add(self, new, looked_up)
            cids[missing] = lookup(new, chunks.index)
        kinds = chunks.kind[cids]
        position = np.arange(len(cids))
        last_setter = np.maximum.accumulate(np.where(kinds != _PASS, position, -1)) if len(cids) else cids
        before = np.concatenate([[-1], last_setter[:-1]]) if len(cids) else cids
        chunk_end = np.cumsum(n_chunks)
        first_of_doc = np.repeat(chunk_end - n_chunks, n_chunks)
        negated = (before >= first_of_doc) & (kinds[before] == _OPENS)
        variant = negated.astype(np.int64)
        lazy = np.flatnonzero(chunks.start[cids, variant] < 0)
        if len(lazy):
            chunks.add_negated(self, np.unique(cids[lazy]).tolist())
        starts, lengths = chunks.start[cids, variant], chunks.length[cids, variant]
        tids = gather(chunks.flat, starts, lengths)
        ends = np.concatenate([[0], np.cumsum(lengths)])
        return tids, ends[chunk_end] - ends[chunk_end - n_chunks]

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(starts, n_feats, flat, valences) as they are now, for the compiled loops: every token id
        already returned by `ids` or `text_ids` is complete in any of their versions."""
        return self._starts, self._n_feats, self._flat, self._vals

    def scratch(self, width: int) -> np.ndarray:
        """An all-zero int32 array of `width` for the compiled loops to count in (they leave it all
        zero, and hold the GIL while they use it, so threads can share it)."""
        counts = getattr(self, "_scratch", None)
        if counts is None or len(counts) != width:
            counts = self._scratch = np.zeros(width, dtype=np.int32)
        return counts

    def feats(self, tid: int) -> np.ndarray:
        """The unigram and char n-gram feature ids of one token id."""
        start = self._starts[tid]
        return self._flat[start : start + self._n_feats[tid]]

    def gather(self, tids: np.ndarray) -> np.ndarray:
        """The feature ids of every token in `tids`, concatenated in order (one vectorised gather)."""
        return gather(self._flat, self._starts[tids], self._n_feats[tids])

    @property
    def n_feats(self) -> np.ndarray:
        return self._n_feats

    @property
    def valences(self) -> np.ndarray:
        return self._vals

    def bigrams(self, tids: np.ndarray, token_doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(document index, feature id) of in-vocabulary bigrams among consecutive tokens."""
        first, ids = self.bigram_hits(tids, token_doc)
        return token_doc[first], ids

    def bigram_hits(self, tids: np.ndarray, token_doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position of the bigram's first token, feature id) of in-vocabulary bigrams among
        consecutive tokens of the same document."""
        if len(tids) < 2 or self.bigram_index is None:
            return np.zeros(0, dtype=np.int64), EMPTY
        found = self.bigram_index.get((tids[:-1] << 32) | tids[1:])
        first = np.flatnonzero((found >= 0) & (token_doc[1:] == token_doc[:-1]))
        return first, found[first].astype(np.int32)
