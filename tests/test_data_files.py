"""The shipped test data is what tests/data/README.md says it is: every file listed with its size
and sha256, nothing unlisted, and the fixture fails (not skips) when a file is missing."""
import hashlib
import re

import pytest

from tests.conftest import DATA, DATA_FILES, ROOT, check_data

ROWS = re.findall(r"^\| `([^`]+)` \| .*? \| (\d+) \| `([0-9a-f]{64})` \|$",
                  (DATA / "README.md").read_text(), re.M)


def test_readme_lists_exactly_the_shipped_files():
    listed = {name for name, _, _ in ROWS}
    shipped = {str(p.relative_to(DATA)) for p in DATA.rglob("*") if p.is_file()} - {"README.md"}
    assert listed == shipped == set(DATA_FILES)


def test_total_under_10_mb():
    assert sum(int(size) for _, size, _ in ROWS) < 10_000_000


@pytest.mark.parametrize("name,size,sha", ROWS, ids=[r[0] for r in ROWS])
def test_size_and_checksum(name, size, sha):
    data = (DATA / name).read_bytes()
    assert len(data) == int(size), f"{name}: {len(data)} bytes, README says {size}"
    assert hashlib.sha256(data).hexdigest() == sha, f"{name}: sha256 differs from the README"


def test_missing_file_fails_not_skips(tmp_path):
    (tmp_path / "criteo").mkdir()
    (tmp_path / "criteo" / "kaggle_train_head10k.tsv").write_text("")
    with pytest.raises(pytest.fail.Exception, match="avazu/train_head10k.csv"):
        check_data(tmp_path)
    assert check_data(DATA) == DATA


def test_ship_writes_the_demo_trace_in_the_current_folder_only(tmp_path, monkeypatch):
    import cachesim
    from cachesim.errors import CachesimError
    from cachesim.io.criteo import ship
    shipped = ROOT / "cachesim" / "data" / "criteo_kaggle_head10k.parquet"
    before = shipped.stat().st_mtime_ns
    monkeypatch.chdir(tmp_path)
    trace = ship()
    out = tmp_path / "criteo_kaggle_head10k.parquet"
    assert out.is_file() and shipped.stat().st_mtime_ns == before
    again, original = cachesim.read_trace(out), cachesim.read_trace(shipped)
    assert len(again) == len(trace) == 260_000
    assert again == original  # the same trace as the shipped one
    with pytest.raises(CachesimError, match="exists"):
        ship()
