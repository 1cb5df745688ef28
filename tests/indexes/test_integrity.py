"""Damage is detected, never served: one test per damage the attack report found, verify, repair.

Each test damages a real index built by the writer (hash encoder, no models) and checks that a
reader raises `IndexCorrupt` naming the file and the fix, instead of serving other results.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmrag.config import IndexConfig
from mmrag.errors import IndexCorrupt, IndexMismatch
from mmrag.indexes import integrity
from mmrag.indexes.index import Index
from mmrag.indexes.repair import repair_index
from mmrag.indexes.verify import verify_index
from tests.indexes.helpers import build, hash_fields, make_doc, word_doc

QUERIES = ("alpha bravo report", "warranty months", "appendix delta", "returns within days", "report number 3")


@pytest.fixture()
def index(tmp_path) -> Path:
    docs = [word_doc(i) for i in range(8)]
    docs.append(make_doc(42, [["The warranty lasts 24 months from the date of purchase."],
                              ["Returns are accepted within 30 days."]]))
    cfg = IndexConfig(page_bm25=True)
    # two commits, so there are two segments per field and a merge-free layout to damage
    with Index.open(tmp_path / "ix", hash_fields(), cfg, write=True) as ix:
        for d in docs[:5]:
            ix.add(*d)
        ix.commit()
        for d in docs[5:]:
            ix.add(*d)
    integrity.forget_verified()
    return tmp_path / "ix"


def results(root: Path, cfg: IndexConfig | None = None) -> list:
    """What a fresh process would answer (the per-process checksum cache is emptied first)."""
    integrity.forget_verified()
    ix = Index.open(root, hash_fields(), cfg or IndexConfig(page_bm25=True))
    try:
        return [[(h.doc_id, h.page, round(h.score, 5)) for h in ix.search(q, k=5)] for q in QUERIES]
    finally:
        ix.close()


def segment_files(root: Path, name: str) -> list[Path]:
    return sorted(root.glob(f"segments/seg-*/{name}"))


def test_every_vector_byte_flipped_behind_an_intact_header_is_refused(index):
    before = results(index)
    path = segment_files(index, "vectors.npy")[0]
    data = bytearray(path.read_bytes())
    header = 128  # numpy's v1 header is padded to 64-byte multiples; 128 covers it here
    assert data[:6] == b"\x93NUMPY"
    data[header:] = bytes(b ^ 0xFF for b in data[header:])
    path.write_bytes(bytes(data))
    assert np.load(path).shape  # still a valid .npy: only the checksum can tell
    with pytest.raises(IndexCorrupt, match=r"vectors\.npy fails its checksum.*--repair"):
        results(index)
    repair_index(index, hash_fields(), IndexConfig(page_bm25=True))
    assert results(index) == before


@pytest.mark.parametrize("verify_checksums", [True, False])
def test_damaged_npy_header_is_index_corrupt_not_an_internal_error(index, verify_checksums):
    path = segment_files(index, "vectors.npy")[0]
    data = bytearray(path.read_bytes())
    bad = b"{'descr': '|O', 'fortran_order': False, 'shape': (3,), }"
    data[10:10 + len(bad)] = bad
    path.write_bytes(bytes(data))
    # sizes are checked always; with checksums off, the parse failure itself must be typed
    with pytest.raises(IndexCorrupt, match=r"vectors\.npy|seg-"):
        results(index, IndexConfig(page_bm25=True, verify_checksums=verify_checksums))


def test_truncated_docstore_is_index_corrupt_and_says_to_reindex(index):
    db = index / "docstore.sqlite"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    with pytest.raises(IndexCorrupt, match="index the documents again"):
        results(index)
    report = verify_index(index)
    assert not report["ok"] and not report["docstore_ok"] and "index the documents again" in report["repair"]
    with pytest.raises(IndexCorrupt, match="index the documents again"):
        repair_index(index, hash_fields(), IndexConfig(page_bm25=True))


def test_changed_checksum_in_manifest_is_noticed(index):
    m = json.loads((index / "manifest.json").read_text())
    first = next(iter(m["segments"][0]["checksums"]))
    m["segments"][0]["checksums"][first]["sha256"] = "0" * 64
    (index / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(IndexCorrupt, match="manifest.json"):
        results(index)
    assert any(p["kind"] == "manifest" for p in verify_index(index)["problems"])


def test_verify_reports_intact_index_ok(index):
    report = verify_index(index)
    assert report["ok"], report["problems"]
    assert report["checked"]["segments"] == 2 and report["checked"]["files"] >= 8


def test_verify_finds_each_damaged_file_and_repair_mends_it(index):
    before = results(index)
    bm25 = sorted((index / "bm25").glob("bm25-0*/*.npy"))[0]
    data = bytearray(bm25.read_bytes())
    data[-1] ^= 0x01
    bm25.write_bytes(bytes(data))
    ids = segment_files(index, "ids.npy")[-1]
    ids.unlink()
    report = verify_index(index)
    files = {Path(p["file"]) for p in report["problems"]}
    assert bm25 in files and ids in files, report["problems"]
    assert report["repair"].startswith("mmrag index --index")
    out = repair_index(index, hash_fields(), IndexConfig(page_bm25=True))
    assert out["repaired"] and out["after"]["ok"], out["after"]["problems"]
    assert out["reencoded"]["text"] > 0 and len(out["dropped_segments"]) == 1
    assert results(index) == before
    assert not ids.parent.exists()  # the damaged folder is gone once nothing names it


def test_repair_rebuilds_a_deleted_manifest(index):
    before = results(index)
    (index / "manifest.json").unlink()
    assert not verify_index(index)["ok"]
    repair_index(index, hash_fields(), IndexConfig(page_bm25=True))
    assert verify_index(index)["ok"]
    assert results(index) == before


def test_repair_with_another_encoder_is_refused(index):
    (index / "manifest.json").write_text("{}")
    with pytest.raises(IndexMismatch, match="config the index was built with"):
        repair_index(index, hash_fields(dim=16), IndexConfig(page_bm25=True))


def live_files(root: Path) -> list[Path]:
    skip = {"write.lock", "run.json", "report.json"}
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in skip
                  and not p.name.endswith(("-wal", "-shm")))


def test_fifty_random_byte_flips_give_identical_results_or_index_corrupt(index, tmp_path):
    baseline = results(index)
    rng = random.Random(16)
    outcomes = {"identical": 0, "corrupt": 0}
    for trial in range(50):
        copy = tmp_path / f"trial{trial}"
        shutil.copytree(index, copy)
        victim = rng.choice(live_files(copy))
        data = bytearray(victim.read_bytes())
        pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
        victim.write_bytes(bytes(data))
        try:
            got = results(copy)
        except IndexCorrupt:
            outcomes["corrupt"] += 1
        else:
            assert got == baseline, f"{victim.relative_to(copy)} byte {pos}: different results served silently"
            outcomes["identical"] += 1
        shutil.rmtree(copy)
    assert outcomes["corrupt"] >= 40, outcomes  # every live file is checksummed: nearly all flips are caught
