/* Compiled inner loops of sentimentkit.text.features and its look-up engine, sentimentkit.text._lookup
 * (optional: the package works without them).
 *
 * Loops that NumPy can only express as many whole-array passes with large temporaries, or that
 * Python runs one object at a time:
 *
 * - chunk_lookup / chunk_insert: raw-text chunks -> chunk ids in a hash table over their code
 *   points (_lookup.ChunkIds), without making a string per known chunk;
 * - lookup: a list of keys -> their ids in a dict, as one int64 array;
 * - char_gram_ids: the char_wb n-gram ids of new words (each window of " word " encoded as an
 *   integer key and probed in the vocabulary's open-addressing hash table, `_lookup.KeyIndex`);
 * - featurize: documents given as token ids -> the TF-IDF rows (word block, char block, each L2
 *   normalised) plus the lexicon cues, written either as CSR arrays or straight into
 *   `X @ weights` without building X;
 * - token_flags: the language guard's six flags of new tokens (text/language.VocabularyTest).
 *
 * They compute what the NumPy code in features.py and _lookup.py computes, in the same
 * floating-point types (float32 TF-IDF values, float64 norms and lexicon sums); only summation order
 * may differ, at the level of float rounding. tests/test_speedups.py checks the two against each
 * other, and every test in tests/test_features.py (which compares with scikit-learn) runs on both.
 * Arrays come in through the buffer protocol; features.py and _lookup.py pass contiguous arrays of
 * the stated dtypes and sizes. The GIL is held throughout each call, so `scratch` (owned by one token
 * table) is never used by two calls at once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MULTIPLIER 0x9E3779B97F4A7C15ULL /* as _lookup.KeyIndex._MULTIPLIER */
#define N_LEX_FEATURES 7                  /* as N_LEXICON_FEATURES */

typedef struct {
    const int64_t *keys;
    const int32_t *values;
    int bits;
    uint64_t mask;
} KeyIndex;

static inline uint64_t key_slot(const KeyIndex *index, int64_t key) {
    return ((uint64_t)key * MULTIPLIER) >> (64 - index->bits);
}

/* _lookup.KeyIndex.get for one key: its value, or -1. */
static inline int64_t key_get(const KeyIndex *index, int64_t key) {
    uint64_t slot = key_slot(index, key);
    for (;;) {
        int64_t found = index->keys[slot];
        if (found == key) return index->values[slot];
        if (found == -1) return -1;
        slot = (slot + 1) & index->mask;
    }
}

/* Item i of a list, which must be a str (borrowed; NULL with TypeError otherwise). */
static PyObject *str_item(PyObject *list, Py_ssize_t i, const char *what) {
    PyObject *item = PyList_GET_ITEM(list, i);
    if (PyUnicode_Check(item)) return item;
    PyErr_Format(PyExc_TypeError, "%s must be str", what);
    return NULL;
}

static int check_size(Py_buffer *buf, Py_ssize_t items, Py_ssize_t itemsize, const char *name) {
    if (buf->len < items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: buffer too small (%zd bytes, need %zd)", name, buf->len,
                     items * itemsize);
        return -1;
    }
    return 0;
}

static int key_index_init(KeyIndex *index, Py_buffer *keys, Py_buffer *values, int bits) {
    Py_ssize_t slots = (Py_ssize_t)1 << bits;
    if (bits < 1 || bits > 62 || check_size(keys, slots, 8, "keys") || check_size(values, slots, 4, "values")) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "bad hash table size");
        return -1;
    }
    index->keys = (const int64_t *)keys->buf;
    index->values = (const int32_t *)values->buf;
    index->bits = bits;
    index->mask = ((uint64_t)1 << bits) - 1;
    return 0;
}

/* char_gram_ids(words, code_of, bits, length_shift, min_n, max_n, keys, values, table_bits,
 *               owners_out, ids_out) -> count
 * For each word (no whitespace in it), every window of " word " of size min_n..max_n (up to the
 * padded length), word by word, sizes ascending, positions ascending; the in-vocabulary ones are
 * written as (index of the word, n-gram id). The caller sizes the outputs for every window. */
static PyObject *char_gram_ids(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *words;
    Py_buffer code_of, keys, values, owners_out, ids_out;
    int bits, length_shift, min_n, max_n, table_bits;
    if (!PyArg_ParseTuple(args, "O!y*iiiiy*y*iw*w*", &PyList_Type, &words, &code_of, &bits, &length_shift,
                          &min_n, &max_n, &keys, &values, &table_bits, &owners_out, &ids_out))
        return NULL;
    PyObject *result = NULL;
    int64_t *window_codes = NULL, *keys_of_word = NULL;
    KeyIndex index;
    if (key_index_init(&index, &keys, &values, table_bits) < 0) goto done;
    if (min_n < 1 || max_n < min_n || max_n > 16) {
        PyErr_SetString(PyExc_ValueError, "bad n-gram range");
        goto done;
    }
    const int64_t *codes = (const int64_t *)code_of.buf;
    Py_ssize_t n_codes = code_of.len / 8;
    int64_t *owners = (int64_t *)owners_out.buf;
    int32_t *ids = (int32_t *)ids_out.buf;
    Py_ssize_t capacity = ids_out.len / 4, found = 0, size = 0;
    if (owners_out.len / 8 < capacity) capacity = owners_out.len / 8;
    Py_ssize_t n_words = PyList_GET_SIZE(words);
    for (Py_ssize_t w = 0; w < n_words; w++) {
        PyObject *word = str_item(words, w, "words");
        if (word == NULL) goto done;
        Py_ssize_t length = PyUnicode_GET_LENGTH(word), padded_length = length + 2;
        if (padded_length > size) {
            size = 2 * padded_length;
            PyMem_Free(window_codes);
            window_codes = PyMem_Malloc(size * sizeof(int64_t));
            PyMem_Free(keys_of_word);
            keys_of_word = PyMem_Malloc(size * (max_n - min_n + 1) * sizeof(int64_t));
            if (window_codes == NULL || keys_of_word == NULL) {
                PyErr_NoMemory();
                goto done;
            }
        }
        int kind = PyUnicode_KIND(word);
        const void *data = PyUnicode_DATA(word);
        window_codes[0] = window_codes[padded_length - 1] = (' ' < n_codes) ? codes[' '] : 0;
        for (Py_ssize_t i = 0; i < length; i++) {
            Py_UCS4 point = PyUnicode_READ(kind, data, i);
            window_codes[i + 1] = (point < (Py_UCS4)n_codes) ? codes[point] : 0;
        }
        /* every window's key first, with its slot's memory requested, then the look-ups: the
         * table is larger than the caches, and the requests overlap instead of waiting in turn */
        Py_ssize_t n_keys = 0;
        for (int n = min_n; n <= max_n && n <= padded_length; n++) {
            for (Py_ssize_t start = 0; start + n <= padded_length; start++) {
                int64_t key = (int64_t)n << length_shift;
                int unknown = 0;
                for (int k = 0; k < n; k++) {
                    int64_t code = window_codes[start + k];
                    unknown |= (code == 0);
                    key |= code << (bits * k);
                }
                if (unknown) continue; /* a character outside the vocabulary's alphabet */
                keys_of_word[n_keys++] = key;
                uint64_t slot = key_slot(&index, key);
                __builtin_prefetch(index.keys + slot);
                __builtin_prefetch(index.values + slot);
            }
        }
        for (Py_ssize_t k = 0; k < n_keys; k++) {
            int64_t id = key_get(&index, keys_of_word[k]);
            if (id < 0) continue;
            if (found >= capacity) {
                PyErr_SetString(PyExc_ValueError, "char_gram_ids: output buffers too small");
                goto done;
            }
            owners[found] = w;
            ids[found++] = (int32_t)id;
        }
    }
    result = PyLong_FromSsize_t(found);
done:
    PyMem_Free(window_codes);
    PyMem_Free(keys_of_word);
    PyBuffer_Release(&code_of);
    PyBuffer_Release(&keys);
    PyBuffer_Release(&values);
    PyBuffer_Release(&owners_out);
    PyBuffer_Release(&ids_out);
    return result;
}

/* featurize(tids, lengths, starts, n_feats, flat, bigram_keys, bigram_values, bigram_bits, idf,
 *           n_word, char_weight, sublinear, valences, n_lex, lexicon_weight, scratch,
 *           weights, n_out, out, data, indices, indptr) -> nnz
 *
 * Documents are given as all their token ids (`tids`) and each one's number of tokens. Per token
 * id the table gives where its feature ids start in `flat` and how many; `valences` is (tokens,
 * n_lex) float32. `scratch` is an int32 array of the TF-IDF width, all zero (left all zero).
 * With `weights` (float64, (columns, n_out), columns = TF-IDF width + 7 * n_lex) the rows are
 * multiplied into `out` (float64, (documents, n_out), overwritten) and nothing else is written;
 * without (None), the rows are written as CSR arrays (float32 data, int32 indices, int64 indptr),
 * columns in order of first occurrence within a row, and the number of stored values returned. */
static PyObject *featurize(PyObject *Py_UNUSED(self), PyObject *args) {
    Py_buffer tids_b, lengths_b, starts_b, n_feats_b, flat_b, bkeys_b, bvalues_b, idf_b, valences_b, scratch_b;
    Py_buffer out_b = {0}, data_b = {0}, indices_b = {0}, indptr_b = {0};
    PyObject *weights_o, *out_o, *data_o, *indices_o, *indptr_o;
    int bigram_bits, sublinear, n_lex, n_out;
    Py_ssize_t n_word;
    double char_weight, lexicon_weight;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*y*iy*ndiy*idw*OiOOOO", &tids_b, &lengths_b, &starts_b, &n_feats_b,
                          &flat_b, &bkeys_b, &bvalues_b, &bigram_bits, &idf_b, &n_word, &char_weight, &sublinear,
                          &valences_b, &n_lex, &lexicon_weight, &scratch_b, &weights_o, &n_out, &out_o, &data_o,
                          &indices_o, &indptr_o))
        return NULL;
    PyObject *result = NULL;
    Py_buffer weights_b = {0};
    int32_t *uniq = NULL;
    float *values = NULL;
    int64_t *raw = NULL, *pairs = NULL;
    Py_ssize_t uniq_size = 0;
    KeyIndex bigrams;
    int has_bigrams = bigram_bits > 0;
    if (has_bigrams && key_index_init(&bigrams, &bkeys_b, &bvalues_b, bigram_bits) < 0) goto done;

    const int64_t *tids = tids_b.buf, *lengths = lengths_b.buf, *starts = starts_b.buf, *n_feats = n_feats_b.buf;
    const int32_t *flat = flat_b.buf;
    const float *idf = idf_b.buf, *valences = valences_b.buf;
    int32_t *counts = scratch_b.buf;
    Py_ssize_t n_tokens = tids_b.len / 8, n_docs = lengths_b.len / 8, n_table = starts_b.len / 8;
    Py_ssize_t n_flat = flat_b.len / 4, width = scratch_b.len / 4;
    Py_ssize_t n_columns = width + (Py_ssize_t)N_LEX_FEATURES * n_lex;
    /* the table's arrays may be read in different versions (one grown by another thread in
     * between): each holds every id the caller has, so only the ids all of them hold are valid */
    if (n_feats_b.len / 8 < n_table) n_table = n_feats_b.len / 8;
    if (n_lex > 0 && valences_b.len / 4 / n_lex < n_table) n_table = valences_b.len / 4 / n_lex;
    if (idf_b.len / 4 < width || n_word > width || n_lex < 0) {
        PyErr_SetString(PyExc_ValueError, "featurize: inconsistent table sizes");
        goto done;
    }
    const double *weights = NULL;
    double *out = NULL;
    float *data = NULL;
    int32_t *indices = NULL;
    int64_t *indptr = NULL;
    Py_ssize_t capacity = 0;
    if (weights_o != Py_None) {
        if (PyObject_GetBuffer(weights_o, &weights_b, PyBUF_SIMPLE) < 0 ||
            PyObject_GetBuffer(out_o, &out_b, PyBUF_WRITABLE) < 0)
            goto done;
        if (n_out < 1 || check_size(&weights_b, n_columns * n_out, 8, "weights") ||
            check_size(&out_b, n_docs * n_out, 8, "out"))
            goto done;
        weights = weights_b.buf;
        out = out_b.buf;
    } else {
        if (PyObject_GetBuffer(data_o, &data_b, PyBUF_WRITABLE) < 0 ||
            PyObject_GetBuffer(indices_o, &indices_b, PyBUF_WRITABLE) < 0 ||
            PyObject_GetBuffer(indptr_o, &indptr_b, PyBUF_WRITABLE) < 0)
            goto done;
        if (check_size(&indptr_b, n_docs + 1, 8, "indptr")) goto done;
        data = data_b.buf;
        indices = indices_b.buf;
        indptr = indptr_b.buf;
        capacity = data_b.len / 4 < indices_b.len / 4 ? data_b.len / 4 : indices_b.len / 4;
        indptr[0] = 0;
    }

    pairs = PyMem_Malloc((n_tokens + 1) * sizeof(int64_t));
    if (pairs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t position = 0, nnz = 0, n_uniq = 0;
    double lex[N_LEX_FEATURES];
    for (Py_ssize_t d = 0; d < n_docs; d++) {
        Py_ssize_t first = position, stop = position + lengths[d];
        n_uniq = 0;
        if (lengths[d] < 0 || stop > n_tokens) {
            PyErr_SetString(PyExc_ValueError, "featurize: lengths exceed the token ids");
            goto done;
        }
        /* this document's distinct features in order of first occurrence, counted in scratch */
        Py_ssize_t needed = 0;
        for (Py_ssize_t i = first; i < stop; i++) {
            int64_t t = tids[i];
            if (t < 0 || t >= n_table || starts[t] < 0 || starts[t] + n_feats[t] > n_flat) {
                PyErr_SetString(PyExc_ValueError, "featurize: token id outside the table");
                goto done;
            }
            needed += n_feats[t] + 1;
        }
        if (needed > uniq_size) {
            uniq_size = 2 * needed;
            PyMem_Free(uniq);
            PyMem_Free(values);
            PyMem_Free(raw);
            uniq = PyMem_Malloc(uniq_size * sizeof(int32_t));
            values = PyMem_Malloc(uniq_size * sizeof(float));
            raw = PyMem_Malloc(uniq_size * sizeof(int64_t));
            if (uniq == NULL || values == NULL || raw == NULL) {
                PyErr_NoMemory();
                goto done;
            }
        }
        /* The document's feature ids (with repeats): each token's, then its in-vocabulary bigrams.
         * The memory each will be looked up in is requested first (the tables are larger than the
         * caches; the requests overlap instead of waiting in turn). */
        Py_ssize_t n_raw = 0, n_pairs = 0;
        for (Py_ssize_t i = first; i < stop; i++) {
            int64_t t = tids[i];
            const int32_t *f = flat + starts[t], *f_end = f + n_feats[t];
            for (; f < f_end; f++) raw[n_raw++] = *f;
            if (has_bigrams && i + 1 < stop) {
                int64_t key = (t << 32) | tids[i + 1];
                uint64_t slot = key_slot(&bigrams, key);
                __builtin_prefetch(bigrams.keys + slot);
                __builtin_prefetch(bigrams.values + slot);
                pairs[n_pairs++] = key;
            }
        }
        for (Py_ssize_t k = 0; k < n_pairs; k++) {
            int64_t id = key_get(&bigrams, pairs[k]);
            if (id >= 0) raw[n_raw++] = id;
        }
        for (Py_ssize_t k = 0; k < n_raw; k++) {
            if (raw[k] < 0 || raw[k] >= width) {
                PyErr_SetString(PyExc_ValueError, "featurize: feature id outside the vocabulary");
                goto done;
            }
            __builtin_prefetch(counts + raw[k]);
            __builtin_prefetch(idf + raw[k]);
            if (weights != NULL) __builtin_prefetch(weights + raw[k] * n_out);
        }
        /* its distinct features in order of first occurrence, counted in scratch */
        for (Py_ssize_t k = 0; k < n_raw; k++)
            if (counts[raw[k]]++ == 0) uniq[n_uniq++] = (int32_t)raw[k];
        /* TF-IDF values, then each block's L2 norm */
        double word_sq = 0.0, char_sq = 0.0;
        for (Py_ssize_t u = 0; u < n_uniq; u++) {
            int32_t f = uniq[u];
            float tf = (float)counts[f];
            counts[f] = 0;
            if (sublinear && tf != 1.0f) tf = logf(tf) + 1.0f;
            float value = tf * idf[f];
            values[u] = value;
            if (f < n_word)
                word_sq += (double)value * (double)value;
            else
                char_sq += (double)value * (double)value;
        }
        double word_norm = sqrt(word_sq), char_norm = sqrt(char_sq);
        float word_scale = (float)(1.0 / (word_norm == 0.0 ? 1.0 : word_norm));
        float char_scale = (float)(char_weight / (char_norm == 0.0 ? 1.0 : char_norm));
        for (Py_ssize_t u = 0; u < n_uniq; u++) values[u] *= uniq[u] < n_word ? word_scale : char_scale;

        if (weights != NULL) {
            double *row = out + d * n_out;
            for (int c = 0; c < n_out; c++) row[c] = 0.0;
            for (Py_ssize_t u = 0; u < n_uniq; u++) {
                const double *w = weights + (Py_ssize_t)uniq[u] * n_out;
                double v = values[u];
                for (int c = 0; c < n_out; c++) row[c] += v * w[c];
            }
        } else {
            if (nnz + n_uniq + N_LEX_FEATURES * n_lex > capacity) {
                PyErr_SetString(PyExc_ValueError, "featurize: output buffers too small");
                goto done;
            }
            memcpy(indices + nnz, uniq, n_uniq * sizeof(int32_t));
            memcpy(data + nnz, values, n_uniq * sizeof(float));
            nnz += n_uniq;
        }

        /* lexicon cues, as _lexicon_features: per lexicon, positive and negative sums, log(1 + how
         * many), max (>= 0), min (<= 0), last non-zero valence; valences scaled by 1/4 */
        for (int k = 0; k < n_lex; k++) {
            double pos = 0.0, neg = 0.0, n_pos = 0.0, n_neg = 0.0, high = 0.0, low = 0.0, last = 0.0;
            int any = 0;
            for (Py_ssize_t i = first; i < stop; i++) {
                double v = valences[tids[i] * n_lex + k];
                if (v > 0) {
                    pos += v;
                    n_pos += 1.0;
                } else if (v < 0) {
                    neg += v;
                    n_neg += 1.0;
                }
                if (!any || v > high) high = v;
                if (!any || v < low) low = v;
                any = 1;
                if (v != 0) last = v;
            }
            if (!any) continue; /* an empty document: all zero */
            lex[0] = pos / 4;
            lex[1] = -neg / 4;
            lex[2] = log1p(n_pos);
            lex[3] = log1p(n_neg);
            lex[4] = (high > 0 ? high : 0) / 4;
            lex[5] = (low < 0 ? low : 0) / 4;
            lex[6] = last / 4;
            for (int j = 0; j < N_LEX_FEATURES; j++) {
                float value = (float)lex[j] * (float)lexicon_weight;
                if (value == 0.0f) continue;
                Py_ssize_t column = width + (Py_ssize_t)k * N_LEX_FEATURES + j;
                if (weights != NULL) {
                    const double *w = weights + column * n_out;
                    double *row = out + d * n_out;
                    for (int c = 0; c < n_out; c++) row[c] += (double)value * w[c];
                } else {
                    indices[nnz] = (int32_t)column;
                    data[nnz++] = value;
                }
            }
        }
        if (indptr != NULL) indptr[d + 1] = nnz;
        position = stop;
    }
    result = PyLong_FromSsize_t(nnz);
done:
    PyMem_Free(uniq);
    PyMem_Free(values);
    PyMem_Free(raw);
    PyMem_Free(pairs);
    PyBuffer_Release(&tids_b);
    PyBuffer_Release(&lengths_b);
    PyBuffer_Release(&starts_b);
    PyBuffer_Release(&n_feats_b);
    PyBuffer_Release(&flat_b);
    PyBuffer_Release(&bkeys_b);
    PyBuffer_Release(&bvalues_b);
    PyBuffer_Release(&idf_b);
    PyBuffer_Release(&valences_b);
    PyBuffer_Release(&scratch_b);
    if (weights_b.obj) PyBuffer_Release(&weights_b);
    if (out_b.obj) PyBuffer_Release(&out_b);
    if (data_b.obj) PyBuffer_Release(&data_b);
    if (indices_b.obj) PyBuffer_Release(&indices_b);
    if (indptr_b.obj) PyBuffer_Release(&indptr_b);
    return result;
}

/* Growable int64 array, handed back as a bytearray (np.frombuffer makes it a writable array). */
typedef struct {
    int64_t *items;
    Py_ssize_t used, size;
} Int64s;

static int int64s_push(Int64s *a, int64_t value) {
    if (a->used == a->size) {
        Py_ssize_t size = a->size ? 2 * a->size : 1024;
        int64_t *items = PyMem_Realloc(a->items, size * sizeof(int64_t));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        a->items = items;
        a->size = size;
    }
    a->items[a->used++] = value;
    return 0;
}

static PyObject *int64s_bytes(Int64s *a) {
    return PyByteArray_FromStringAndSize((const char *)a->items, a->used * (Py_ssize_t)sizeof(int64_t));
}

/* lookup(keys, index) -> bytearray of int64: index[key] for each key, -1 where it is missing. */
static PyObject *lookup(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *keys, *index;
    if (!PyArg_ParseTuple(args, "O!O!", &PyList_Type, &keys, &PyDict_Type, &index)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(keys);
    PyObject *out = PyByteArray_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int64_t));
    if (out == NULL) return NULL;
    int64_t *ids = (int64_t *)PyByteArray_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *found = PyDict_GetItemWithError(index, PyList_GET_ITEM(keys, i)); /* borrowed */
        ids[i] = found == NULL ? -1 : PyLong_AsLongLong(found);
        if (PyErr_Occurred()) {
            Py_DECREF(out);
            return NULL;
        }
    }
    return out;
}

/* The chunk table: raw-text chunks -> chunk ids, as an open-addressing table of (hash, id + 1)
 * pairs (0: empty) over the chunks' code points, which are kept in one uint32 arena (`points`;
 * `where` gives each id's (offset, length) in it). _lookup.ChunkIds owns the arrays and keeps a
 * dict beside them; readers of the table need no lock, because each call holds the GIL throughout
 * and every index it reads is bounds-checked (an entry it cannot verify reads as missing, and the
 * caller then asks the dict under the lock). */
static inline uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t points_hash(int kind, const void *data, Py_ssize_t start, Py_ssize_t end) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a over code points, then mixed */
    for (Py_ssize_t i = start; i < end; i++) {
        h ^= PyUnicode_READ(kind, data, i);
        h *= 0x100000001b3ULL;
    }
    return mix64(h ^ (uint64_t)(end - start));
}

static int table_bits(Py_buffer *slots) {
    Py_ssize_t n = slots->len / 16;
    int bits = 0;
    while (((Py_ssize_t)1 << (bits + 1)) <= n) bits++;
    if (n < 2 || ((Py_ssize_t)1 << bits) != n) {
        PyErr_SetString(PyExc_ValueError, "chunk table: slots must be a power of two (at least 2) of int64 pairs");
        return -1;
    }
    return bits;
}

/* chunk_insert(chunks, first_id, slots) -> None: enter chunks[i] with id first_id + i (the caller
 * keeps the table at most half full, and enters each chunk once). */
static PyObject *chunk_insert(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *chunks;
    Py_ssize_t first_id;
    Py_buffer slots_b;
    if (!PyArg_ParseTuple(args, "O!nw*", &PyList_Type, &chunks, &first_id, &slots_b)) return NULL;
    PyObject *result = NULL;
    int bits = table_bits(&slots_b);
    if (bits < 0) goto done;
    int64_t *slots = slots_b.buf;
    uint64_t mask = ((uint64_t)1 << bits) - 1;
    Py_ssize_t n = PyList_GET_SIZE(chunks);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *chunk = str_item(chunks, i, "chunks");
        if (chunk == NULL) goto done;
        uint64_t h = points_hash(PyUnicode_KIND(chunk), PyUnicode_DATA(chunk), 0, PyUnicode_GET_LENGTH(chunk));
        uint64_t slot = h >> (64 - bits), probes = 0;
        while (slots[2 * slot + 1] != 0) {
            slot = (slot + 1) & mask;
            if (++probes > mask) {
                PyErr_SetString(PyExc_ValueError, "chunk table: full");
                goto done;
            }
        }
        slots[2 * slot] = (int64_t)h;
        slots[2 * slot + 1] = first_id + i + 1;
    }
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyBuffer_Release(&slots_b);
    return result;
}

typedef struct {
    Py_ssize_t text, start, end;
    uint64_t hash, slot;
    int64_t id;
} Chunk;

/* Is the chunk the entry `id`? (false for an id or arena range this call's arrays do not hold) */
static int chunk_is(const Chunk *c, PyObject *text, int64_t id, const int64_t *where, Py_ssize_t n_where,
                    const uint32_t *points, Py_ssize_t n_points) {
    if (id < 0 || id >= n_where) return 0;
    int64_t offset = where[2 * id], length = where[2 * id + 1];
    if (length != c->end - c->start || offset < 0 || offset + length > n_points) return 0;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (int64_t i = 0; i < length; i++)
        if (PyUnicode_READ(kind, data, c->start + i) != points[offset + i]) return 0;
    return 1;
}

/* chunk_lookup(texts, clean, slots, where, points) -> (chunk ids, chunks per text, missing chunks)
 * Each text cleaned (`clean(text)`, called only for a text with "&" or a curly apostrophe, the
 * only characters preprocess.clean_text changes) and split as str.split() splits; ids (-1 where
 * missing) and each text's number of chunks as bytearrays of int64, the missing chunks as a list
 * in order. Every chunk's hash is computed and its slot requested from memory first, then the
 * slots are probed and the candidates' code points requested, then compared. */
static PyObject *chunk_lookup(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *texts, *clean;
    Py_buffer slots_b, where_b, points_b;
    if (!PyArg_ParseTuple(args, "O!Oy*y*y*", &PyList_Type, &texts, &clean, &slots_b, &where_b, &points_b))
        return NULL;
    PyObject *result = NULL, *missing = NULL, *ids_bytes = NULL, *counts_bytes = NULL;
    Py_ssize_t n_texts = PyList_GET_SIZE(texts), n_chunks = 0, size = 0;
    PyObject **objects = PyMem_Calloc(n_texts + 1, sizeof(PyObject *));
    Chunk *chunks = NULL;
    Int64s ids = {0}, counts = {0};
    int bits = table_bits(&slots_b);
    if (objects == NULL || bits < 0) {
        if (objects == NULL) PyErr_NoMemory();
        goto done;
    }
    const int64_t *slots = slots_b.buf, *where = where_b.buf;
    const uint32_t *points = points_b.buf;
    Py_ssize_t n_where = where_b.len / 16, n_points = points_b.len / 4;
    uint64_t mask = ((uint64_t)1 << bits) - 1;
    /* split and hash; request each chunk's slot */
    for (Py_ssize_t t = 0; t < n_texts; t++) {
        PyObject *text = str_item(texts, t, "texts");
        if (text == NULL) goto done;
        Py_ssize_t length = PyUnicode_GET_LENGTH(text);
        if (PyUnicode_FindChar(text, '&', 0, length, 1) >= 0 || PyUnicode_FindChar(text, 0x2018, 0, length, 1) >= 0 ||
            PyUnicode_FindChar(text, 0x2019, 0, length, 1) >= 0) {
            text = PyObject_CallOneArg(clean, text);
            if (text == NULL) goto done;
            objects[t] = text;
            if (!PyUnicode_Check(text)) {
                PyErr_SetString(PyExc_TypeError, "clean must return str");
                goto done;
            }
            length = PyUnicode_GET_LENGTH(text);
        } else {
            Py_INCREF(text);
            objects[t] = text;
        }
        int kind = PyUnicode_KIND(text);
        const void *data = PyUnicode_DATA(text);
        int64_t in_text = 0;
        Py_ssize_t i = 0;
        while (i < length) {
            while (i < length && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) i++;
            if (i == length) break;
            Py_ssize_t start = i;
            while (i < length && !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) i++;
            if (n_chunks == size) {
                size = size ? 2 * size : 4096;
                Chunk *grown = PyMem_Realloc(chunks, size * sizeof(Chunk));
                if (grown == NULL) {
                    PyErr_NoMemory();
                    goto done;
                }
                chunks = grown;
            }
            Chunk *c = &chunks[n_chunks++];
            c->text = t;
            c->start = start;
            c->end = i;
            c->hash = points_hash(kind, data, start, i);
            c->slot = c->hash >> (64 - bits);
            c->id = -1;
            __builtin_prefetch(slots + 2 * c->slot);
            in_text++;
        }
        if (int64s_push(&counts, in_text) < 0) goto done;
    }
    /* probe to the first entry with the same hash; request its place in the arena */
    for (Py_ssize_t k = 0; k < n_chunks; k++) {
        Chunk *c = &chunks[k];
        for (;;) {
            int64_t id = slots[2 * c->slot + 1];
            if (id == 0) break;
            if ((uint64_t)slots[2 * c->slot] == c->hash) {
                c->id = id - 1;
                if (c->id < n_where) __builtin_prefetch(where + 2 * c->id);
                break;
            }
            c->slot = (c->slot + 1) & mask;
        }
    }
    for (Py_ssize_t k = 0; k < n_chunks; k++) {
        int64_t id = chunks[k].id;
        if (id >= 0 && id < n_where && where[2 * id] >= 0 && where[2 * id] < n_points)
            __builtin_prefetch(points + where[2 * id]);
    }
    /* compare the code points (on a mismatch, a hash collision: probe on) */
    missing = PyList_New(0);
    if (missing == NULL) goto done;
    for (Py_ssize_t k = 0; k < n_chunks; k++) {
        Chunk *c = &chunks[k];
        PyObject *text = objects[c->text];
        while (c->id >= 0 && !chunk_is(c, text, c->id, where, n_where, points, n_points)) {
            c->id = -1;
            for (;;) {
                c->slot = (c->slot + 1) & mask;
                int64_t id = slots[2 * c->slot + 1];
                if (id == 0) break;
                if ((uint64_t)slots[2 * c->slot] == c->hash) {
                    c->id = id - 1;
                    break;
                }
            }
        }
        if (c->id < 0) {
            PyObject *chunk = PyUnicode_Substring(text, c->start, c->end);
            int failed = chunk == NULL || PyList_Append(missing, chunk) < 0;
            Py_XDECREF(chunk);
            if (failed) goto done;
        }
        if (int64s_push(&ids, c->id) < 0) goto done;
    }
    ids_bytes = int64s_bytes(&ids);
    counts_bytes = int64s_bytes(&counts);
    if (ids_bytes != NULL && counts_bytes != NULL) result = PyTuple_Pack(3, ids_bytes, counts_bytes, missing);
done:
    if (objects != NULL)
        for (Py_ssize_t t = 0; t < n_texts; t++) Py_XDECREF(objects[t]);
    PyMem_Free(objects);
    PyMem_Free(chunks);
    PyMem_Free(ids.items);
    PyMem_Free(counts.items);
    Py_XDECREF(ids_bytes);
    Py_XDECREF(counts_bytes);
    Py_XDECREF(missing);
    PyBuffer_Release(&slots_b);
    PyBuffer_Release(&where_b);
    PyBuffer_Release(&points_b);
    return result;
}

/* The language guard's per-token flags (text/language.VocabularyTest._token_flags): for each token,
 * with a trailing `suffix` (the negation mark) removed, six bytes in six rows of n: #tag, word,
 * known (in `vocabulary`), non-Latin letters, common English word, common foreign word; the last
 * four only for words. A word is all letters, or holds a letter and does not start with @, # or <.
 * Letters are what str.isalpha() calls letters; Latin is U+0000..U+024F and U+1E00..U+1EFF. */
static PyObject *token_flags(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *tokens, *vocabulary, *english, *foreign, *suffix;
    if (!PyArg_ParseTuple(args, "O!O!OOU", &PyList_Type, &tokens, &PyDict_Type, &vocabulary, &english,
                          &foreign, &suffix))
        return NULL;
    if (!PyAnySet_Check(english) || !PyAnySet_Check(foreign)) {
        PyErr_SetString(PyExc_TypeError, "english and foreign must be sets");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(tokens), suffix_len = PyUnicode_GET_LENGTH(suffix);
    PyObject *out = PyByteArray_FromStringAndSize(NULL, 6 * n);
    if (out == NULL) return NULL;
    char *flags = PyByteArray_AS_STRING(out);
    memset(flags, 0, (size_t)(6 * n));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *token = str_item(tokens, i, "tokens");
        if (token == NULL) goto fail;
        Py_ssize_t length = PyUnicode_GET_LENGTH(token);
        Py_ssize_t marked = suffix_len > 0 && length >= suffix_len
                                ? PyUnicode_Tailmatch(token, suffix, 0, length, 1)
                                : 0;
        if (marked < 0) goto fail;
        PyObject *base = marked ? PyUnicode_Substring(token, 0, length - suffix_len) : token;
        if (base == NULL) goto fail;
        if (!marked) Py_INCREF(base);
        int kind = PyUnicode_KIND(base);
        const void *data = PyUnicode_DATA(base);
        Py_ssize_t size = PyUnicode_GET_LENGTH(base);
        int all_letters = size > 0, any_letter = 0, non_latin = 0;
        for (Py_ssize_t j = 0; j < size; j++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, j);
            if (!Py_UNICODE_ISALPHA(c)) {
                all_letters = 0;
                continue;
            }
            any_letter = 1;
            if (!(c <= 0x24F || (c >= 0x1E00 && c <= 0x1EFF))) non_latin = 1;
        }
        Py_UCS4 first = size > 0 ? PyUnicode_READ(kind, data, 0) : 0;
        int word = all_letters || (size > 0 && first != '@' && first != '#' && first != '<' && any_letter);
        flags[i] = size > 0 && first == '#';
        flags[n + i] = (char)word;
        if (word) {
            int known = PyDict_Contains(vocabulary, base);
            int is_english = known < 0 ? -1 : PySet_Contains(english, base);
            int is_foreign = is_english < 0 ? -1 : PySet_Contains(foreign, base);
            if (is_foreign < 0) {
                Py_DECREF(base);
                goto fail;
            }
            flags[2 * n + i] = (char)known;
            flags[3 * n + i] = (char)non_latin;
            flags[4 * n + i] = (char)is_english;
            flags[5 * n + i] = (char)is_foreign;
        }
        Py_DECREF(base);
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

static PyMethodDef methods[] = {
    {"chunk_insert", chunk_insert, METH_VARARGS, "enter chunks in a chunk table (see _lookup.ChunkIds)"},
    {"chunk_lookup", chunk_lookup, METH_VARARGS, "texts -> chunk ids in a chunk table (see _lookup.ChunkIds)"},
    {"lookup", lookup, METH_VARARGS, "keys -> their ids in a dict, -1 where missing"},
    {"char_gram_ids", char_gram_ids, METH_VARARGS, "char_wb n-gram ids of words (see _lookup.CharGrams)"},
    {"token_flags", token_flags, METH_VARARGS, "the language guard's per-token flags (see text/language)"},
    {"featurize", featurize, METH_VARARGS, "TF-IDF + lexicon rows of token-id documents (see features)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_speedups", NULL, -1, methods};

PyMODINIT_FUNC PyInit__speedups(void) { return PyModule_Create(&module); }
