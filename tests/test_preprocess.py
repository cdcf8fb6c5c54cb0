from sentimentkit.text.preprocess import (
    ALLCAPS_TOKEN,
    ELONG_TOKEN,
    NUM_TOKEN,
    URL_TOKEN,
    USER_TOKEN,
    base_token,
    mark_negation,
    tokenize,
    tokenize_with_spans,
)


def test_normalises_urls_mentions_numbers():
    tokens = tokenize("@bob paid $3.39 at http://t.co/abc and www.example.com/x")
    assert tokens[0] == USER_TOKEN
    assert tokens.count(URL_TOKEN) == 2
    assert NUM_TOKEN in tokens
    assert "bob" not in tokens


def test_elongation_and_shouting_are_cues_not_noise():
    tokens = tokenize("sooooo GOOD")
    assert tokens == [ELONG_TOKEN, "soo", ALLCAPS_TOKEN, "good"]


def test_negation_scope_marks_words_until_punctuation_and_keeps_negator():
    tokens = tokenize("I do not like this movie. It is fun")
    assert "not" in tokens
    assert "like_NEG" in tokens and "movie_NEG" in tokens
    assert "fun" in tokens and "fun_NEG" not in tokens


def test_curly_apostrophe_negation_is_recognised():
    assert "wait_NEG" in tokenize("can\u2019t wait for february")


def test_but_ends_negation_scope():
    assert mark_negation(["not", "bad", "but", "good"]) == ["not", "bad_NEG", "but", "good"]


def test_emoticons_emoji_and_hashtags_survive():
    tokens = tokenize("great day :) \U0001f602 #blessed")
    assert ":)" in tokens
    assert "\U0001f602" in tokens
    assert "#blessed" in tokens and "blessed" in tokens


def test_html_entities_are_unescaped():
    assert "&" in tokenize("rock &amp; roll")


def test_empty_and_whitespace_give_no_tokens():
    assert tokenize("") == []
    assert tokenize("   \n\t ") == []


def test_spans_point_into_original_text_and_match_tokenize():
    text = "I  don't LOVE it :("
    spans = tokenize_with_spans(text)
    assert [t for t, _, _ in spans] == tokenize(text)
    # Each token points at the whitespace-delimited chunk it came from.
    assert [(t, text[s:e]) for t, s, e in spans] == [
        ("i", "I"), ("don't", "don't"), (ALLCAPS_TOKEN, "LOVE"), ("love_NEG", "LOVE"), ("it_NEG", "it"),
        (":(", ":("),
    ]  # fmt: skip
    tweet = "Soooo happy today!!! #Great @bob"
    for token, start, end in tokenize_with_spans(tweet):
        chunk = tweet[start:end]
        assert chunk and chunk.strip() == chunk
        # A word token is part of its (lower-cased) chunk; a marker token stands for its chunk.
        assert token in {ELONG_TOKEN, USER_TOKEN} or base_token(token) in chunk.lower()


def test_base_token_strips_negation_suffix():
    assert base_token("good_NEG") == "good"
    assert base_token("good") == "good"


def test_letters_only_chunks_take_the_fast_path_with_the_regex_result():
    """`_tokenize_chunk` skips the TweetTokenizer regex for letters-only chunks; the regex keeps
    them whole, including letters of other scripts and emoticon-like letter pairs."""
    from sentimentkit.text.preprocess import _NUM_RE, _URL_RE, _WORD_RE, _normalise_token, _tokenize_chunk

    words = [
        "hello",
        "XD",
        "xD",
        "Do",
        "ß",
        "straße",
        "naïve",
        "日本語",
        "ǅemal",
        "ĳssel",
        "a",
        "SOOOO",
        "noooo",
    ]
    for word in words:
        assert word.isalpha()
        assert _WORD_RE.findall(word) == [word], word
        assert _URL_RE.match(word) is None and _NUM_RE.match(word) is None  # skipped for letters
        assert _tokenize_chunk(word) == tuple(_normalise_token(word))


def test_plain_ascii_hashtags_take_the_fast_path_with_the_regex_result():
    """A chunk that is only an ASCII hashtag skips both the regex and `_simple_split`."""
    from sentimentkit.text.preprocess import _WORD_RE, _normalise_token, _simple_split, _tokenize_chunk

    for chunk in (
        "#ab",
        "#Love",
        "#USA",
        "#737",
        "#d8",
        "#SOOOgood",
        "#a2b3c4",
        "#USA2",
        "#Aa",
        "#111",
        "#Ab",
    ):
        assert _WORD_RE.findall(chunk) == [chunk] and _simple_split(chunk) == [chunk], chunk
        assert _tokenize_chunk(chunk) == tuple(_normalise_token(chunk)), chunk
    for other in ("#a", "#a_b", "#ab!", "##ab", "#日本"):  # not the fast path's shape: the full path
        assert _tokenize_chunk(other) == tuple(
            t for raw in (_simple_split(other) or _WORD_RE.findall(other)) for t in _normalise_token(raw)
        )


def test_one_character_tokens_take_the_shortcut_with_the_full_result():
    """`_normalise_token` maps a one-character token without its URL/number/case checks."""
    from sentimentkit.text.preprocess import _normalise_any, _normalise_token

    chars = [chr(c) for c in range(0x3000)] + ["\u2026", "\U0001f600", "\u0663", "\uff11", "\u0130", "\u01c5"]
    for char in chars:
        assert _normalise_token(char) == _normalise_any(char), repr(char)
    assert _normalise_token("7") == [NUM_TOKEN] and _normalise_token("\u0663") == [
        NUM_TOKEN
    ]  # Arabic-Indic 3
    assert _normalise_token("\u00b2") == ["\u00b2"]  # a superscript is no decimal digit


def test_simple_chunks_skip_the_regex_with_the_regex_result():
    """`_simple_split` (word or hashtag with quotes, marks, a final colon) gives exactly the
    TweetTokenizer regex's tokens, or None where it cannot be sure (emoticons such as "D:")."""
    import itertools

    from sentimentkit.text.preprocess import _WORD_RE, _simple_split

    leads = ["", "'", '"', "\u201c", "("]
    words = ["d", "D", "p", "Do", "po", "o", "ab", "http", "https", "abc", "dog's", "a-b", "xD", "8", "²a"]
    words += ["日本", "#ab", "#a", "#d8", "#737", "##ab", "#a_b", "www"]
    closes = ["", "'", '"', "\u201d", ")"]
    marks = ["", ".", "..", "...", "!", "!!", "?!", ",", "\u2026", ".!..", "\u2026."]
    colons = ["", ":", ";", "::"]
    taken = 0
    for parts in itertools.product(leads, words, closes, marks, colons):
        chunk = "".join(parts)
        tokens = _simple_split(chunk)
        if tokens is not None:
            taken += 1
            assert tokens == _WORD_RE.findall(chunk), chunk
    assert taken > 5000  # the fast path is really taken
    for emoticon_like in ("D:", "Do:", "p':", '"D:', "(o:", "²a."):
        assert _simple_split(emoticon_like) is None


def test_tokenize_many_is_tokenize_of_each_text_flattened():
    from sentimentkit.text.preprocess import tokenize_many

    texts = ["I do not like it. fine", "", "not", "good #tag…", "   ", "can't wait!! :)"]
    tokens, counts = tokenize_many(texts)
    assert counts == [len(tokenize(t)) for t in texts]
    assert tokens == [tok for t in texts for tok in tokenize(t)]
