"""`io.stream.read_ahead`: the next chunk read on another thread while the caller works."""
import threading

import numpy as np
import pytest

from cachesim.io.stream import VIEW_BUFFERS, read_ahead, stream_chunks


def test_items_in_order_and_the_readers_error_after_them():
    def gen():
        yield from range(5)
        raise ValueError("bad record at byte 120")
    got = []
    with pytest.raises(ValueError, match="byte 120"):
        for x in read_ahead(gen()):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_a_caller_that_stops_early_stops_the_reader():
    pulled = []

    def gen():
        for i in range(10_000):
            pulled.append(i)
            yield i
    for x in read_ahead(gen()):
        if x == 3:
            break
    # the reader ran at most the queue's item and the one it was putting past the caller's
    assert len(pulled) <= 6
    assert not any(t.name == "cachesim-read-ahead" and t.is_alive()
                   for t in threading.enumerate())


def test_views_stay_valid_while_read_ahead_holds_the_next(tmp_path):
    """oracleGeneral views rotate over VIEW_BUFFERS buffers: read ahead by one, each chunk the
    caller holds is still the file's (a single reused buffer would show the next chunk's)."""
    from cachesim.io.libcachesim import ORACLE_DTYPE as DT
    rng = np.random.default_rng(0)
    rec = np.zeros(1000, dtype=DT)
    rec["id"] = rng.integers(0, 1 << 40, 1000)
    rec["size"] = rng.integers(1, 100, 1000)
    path = tmp_path / "t.oracleGeneral.bin"
    rec.tofile(path)
    copies = [(k.copy(), s.copy()) for k, s in stream_chunks(path, 7)]
    seen = []
    for keys, sizes in read_ahead(stream_chunks(path, 7, views=True)):
        seen.append((keys.copy(), sizes.astype(np.int64)))
    assert len(seen) == len(copies) == -(-1000 // 7) and VIEW_BUFFERS >= 3
    for (k1, s1), (k2, s2) in zip(seen, copies):
        assert np.array_equal(k1, k2) and np.array_equal(s1, s2)
    with pytest.raises(ValueError, match="depth"):
        next(read_ahead(iter(()), depth=VIEW_BUFFERS - 1))
