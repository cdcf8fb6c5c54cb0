import functools
import http.server
import threading

import pandas as pd
import pytest

from sentimentkit.data import (
    DataError,
    fetch_tweeteval,
    load_labelled_csv,
    normalise_labels,
    overlap,
    validate,
    validate_splits,
)


def write(tmp_path, text: str, name: str = "d.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_labels_any_case_and_spaces_are_accepted(tmp_path):
    path = write(tmp_path, "text,label\na, Positive \nb,NEGATIVE\nc,neutral\n")
    frame = load_labelled_csv(path)
    assert frame["label"].tolist() == ["positive", "negative", "neutral"]


def test_bad_labels_are_named_with_their_rows(tmp_path):
    path = write(tmp_path, "text,label\na,positive\nb,happy\nc,2\n")
    with pytest.raises(DataError) as info:
        load_labelled_csv(path)
    message = str(info.value)
    assert "'happy'" in message and "'2'" in message and "row(s) 2, 3" in message


def test_custom_column_names(tmp_path):
    path = write(tmp_path, "tweet,sentiment\nhello,neutral\n")
    assert load_labelled_csv(path, "tweet", "sentiment")["text"].tolist() == ["hello"]


def test_missing_column_lists_available_ones(tmp_path):
    path = write(tmp_path, "tweet,label\nhello,neutral\n")
    with pytest.raises(DataError, match=r"no column\(s\) \['text'\].*\['tweet', 'label'\]"):
        load_labelled_csv(path)


def test_missing_file_and_legacy_encodings(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_labelled_csv(tmp_path / "nope.csv")
    # Was: "not UTF-8; re-save it as UTF-8 CSV", while `predict` read the same file: one reader now.
    legacy = tmp_path / "latin.csv"
    legacy.write_bytes("text,label\ncaf\xe9,neutral\n".encode("latin-1"))
    assert load_labelled_csv(legacy)["text"].tolist() == ["caf\u00e9"]


def test_empty_label_is_an_error():
    with pytest.raises(DataError):
        normalise_labels(pd.Series(["positive", None]))


def test_validate_reports_counts_empties_duplicates_and_conflicts():
    frame = pd.DataFrame(
        {
            "text": ["a", "A ", "b", "", "c"],
            "label": ["positive", "negative", "neutral", "neutral", "neutral"],
        }
    )
    report = validate(frame, "x")
    assert report.rows == 5
    assert report.label_counts == {"negative": 1, "neutral": 3, "positive": 1}
    assert report.empty_texts == 1
    assert report.duplicate_texts == 1
    assert report.conflicting_duplicates == 1


def test_overlap_between_splits_is_leakage():
    a = pd.DataFrame({"text": ["x", "y"], "label": ["neutral"] * 2})
    b = pd.DataFrame({"text": [" X", "z"], "label": ["neutral"] * 2})
    assert overlap(a, b) == 1
    reports = validate_splits({"train": a, "test": b})
    assert reports[0].overlap == {"test": 1}


@pytest.fixture
def tweeteval_server(tmp_path):
    """A real local HTTP server serving files laid out like the TweetEval repository."""
    root = tmp_path / "remote" / "datasets" / "sentiment"
    root.mkdir(parents=True)
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        (root / f"{split}_text.txt").write_text(
            "\n".join(f"{split} tweet {i} \u2764" for i in range(n)) + "\n"
        )
        (root / f"{split}_labels.txt").write_text("\n".join(str(i % 3) for i in range(n)) + "\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "remote"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/datasets/sentiment", root
    server.shutdown()


def test_fetch_data_downloads_converts_and_caches(tweeteval_server, tmp_path):
    url, root = tweeteval_server
    out = tmp_path / "data"
    written = fetch_tweeteval(out, base_url=url)
    assert set(written) == {"train", "validation", "test"}
    train = load_labelled_csv(written["train"])
    assert train["label"].tolist() == ["negative", "neutral", "positive", "negative"]
    assert train["text"][0] == "train tweet 0 \u2764"
    (root / "train_text.txt").unlink()  # cached: no second download needed
    assert fetch_tweeteval(out, base_url=url)["train"] == written["train"]


def test_fetch_data_offline_gives_clear_error(tmp_path):
    with pytest.raises(DataError, match="offline"):
        fetch_tweeteval(tmp_path, base_url="http://127.0.0.1:9/none", timeout=2)


def test_fetch_data_mismatched_files_are_rejected(tweeteval_server, tmp_path):
    url, root = tweeteval_server
    (root / "test_labels.txt").write_text("0\n")
    with pytest.raises(DataError, match="3 texts but 1 labels"):
        fetch_tweeteval(tmp_path / "d", base_url=url)


def test_near_duplicates_ignore_urls_mentions_case_and_elongation():
    from sentimentkit.data import near_duplicates_of

    train = pd.DataFrame({"text": ["@bob I loooove this game http://t.co/a", "something else"]})
    val = pd.DataFrame({"text": ["@amy I LOOOOOVE this game https://x.co/b", "a new tweet"]})
    assert near_duplicates_of(val, train).tolist() == [True, False]
    reports = validate_splits(
        {"train": train.assign(label="positive"), "validation": val.assign(label="positive")}
    )
    assert reports[1].near_overlap == {"train": 1}
    assert reports[1].overlap == {"train": 0}
