import numpy as np
import pytest

from mmrag.errors import QueryError
from mmrag.indexes.docstore import DocStore, parse_page_range
from tests.indexes.helpers import make_doc


@pytest.fixture()
def store(tmp_path):
    s = DocStore(tmp_path / "d.sqlite")
    s.begin(write=True)
    for i, (meta, root) in enumerate([({"year": 2021, "team": "a"}, "/r/x"), ({"year": 2022}, "/r/y"),
                                      ({"year": 2021}, "/other")]):
        doc, pages, chunks = make_doc(i, [["p1 text"], ["p2 text"], ["p3 text"]], meta, root)
        s.add_document(doc, pages, chunks, [""] * len(chunks), None)
    s.commit()
    yield s
    s.close()


def pages_of(store, ids):
    return sorted((p.doc_id, p.page_number) for p, _ in store.pages_by_id(ids).values())


def test_filters_by_doc_path_metadata_and_page_range(store):
    assert pages_of(store, store.filter_pages({"doc_id": "d1"})) == [("d1", 1), ("d1", 2), ("d1", 3)]
    assert pages_of(store, store.filter_pages({"doc_id": ["d0", "d2"], "page": "2-3"})) == [
        ("d0", 2), ("d0", 3), ("d2", 2), ("d2", 3)]
    assert pages_of(store, store.filter_pages({"path": "/r/*"})) == [(f"d{i}", n) for i in (0, 1) for n in (1, 2, 3)]
    assert pages_of(store, store.filter_pages({"metadata": {"year": 2021}, "page": 1})) == [("d0", 1), ("d2", 1)]
    assert pages_of(store, store.filter_pages({"metadata": {"team": "a"}, "pages": [3, 3]})) == [("d0", 3)]
    assert len(store.filter_pages({"doc_id": []})) == 0


def test_bad_filters_are_query_errors(store):
    with pytest.raises(QueryError, match="unknown filter"):
        store.filter_pages({"year": 2021})
    with pytest.raises(QueryError):
        parse_page_range("5-2")
    with pytest.raises(QueryError):
        parse_page_range("two")
    assert parse_page_range(4) == (4, 4) and parse_page_range("2-5") == (2, 5)


def test_ids_are_never_reused_after_delete(store):
    before_chunks, _ = store.chunk_page_map()
    store.begin(write=True)
    assert store.delete_document("d2")
    doc, pages, chunks = make_doc(9, [["new"]])
    page_ids, chunk_ids = store.add_document(doc, pages, chunks, [""], None)
    store.commit()
    assert chunk_ids.min() > before_chunks.max()
    assert store.counts() == {"documents": 3, "pages": 7, "chunks": 7}
    assert store.document("d2") is None and store.page("d9", 1).text == "new"
