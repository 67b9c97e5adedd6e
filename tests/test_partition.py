"""replay_partitioned: a batch replay split by set ranges (or by tables) over processes merges
to exactly the single-process Result."""
import numpy as np
import pytest

import cachesim
from cachesim.errors import CachesimError
from cachesim.simulate.batch import replay_batch
from cachesim.simulate.partition import balance_tables, replay_partitioned


@pytest.fixture(autouse=True)
def _fork_small_traces(monkeypatch):
    """Small test traces split into processes too (by default they run in one)."""
    from cachesim.simulate import partition
    monkeypatch.setattr(partition, "MIN_PART_ACCESSES", 1)


def random_trace(seed, n_tables=3, n=6000, batch=300, rows=(50, 900)):
    """Skewed rows of `n_tables` tables of rows[0]..rows[1] rows, in batches of about `batch`
    accesses (half to twice that): hits, several misses a batch and evictions."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(*rows, n_tables)
    table = rng.integers(0, n_tables, n).astype(np.int32)
    # skewed rows so that sets see hits, several misses per batch and evictions
    row = (rng.zipf(1.3, n) - 1) % rows[table]
    bsz = rng.integers(batch // 2, batch * 2, n // batch + 2)
    b = np.repeat(np.arange(bsz.size), bsz)[:n]
    return cachesim.Trace(table=table, row=row.astype(np.int64), batch=b, table_rows=rows,
                          source=f"random-{seed}")


def record(res):
    rec = res.to_record(per_table=True)
    rec.pop("seconds")
    return rec


CASES = [  # (cache_model, per_table, ways, capacity, prefetch_pipeline)
    ("fbgemm", False, 32, "5%", False),
    ("fbgemm", False, 32, "3%", True),
    ("fbgemm", True, 32, "8%", False),
    ("ideal", False, 32, "10%", False),
    ("ideal", False, 4, "10%", False),
    ("ideal", True, 32, "10%", False),
]


@pytest.mark.parametrize("policy,model,per_table,ways,cap,pipe",
                         [(pol, *case) for pol in ("lru", "lfu") for case in CASES
                          if pol == "lru" or not case[-1]])  # the pipeline is LRU only
def test_partitioned_equals_single_process(policy, model, per_table, ways, cap, pipe):
    for seed, parts in ((1, 2), (2, 3)):
        tr = random_trace(seed)
        kw = dict(ways=ways, per_table=per_table, cache_model=model)
        if pipe:
            kw["prefetch_pipeline"] = True
        one = replay_batch(tr, policy, cap, **kw)
        split = replay_partitioned(tr, policy, cap, parts=parts, **kw)
        assert one.evictions > 0 and one.hits > 0  # the trace exercises the cache
        assert record(split) == record(one)
        assert split.calls == len(tr.batch_starts) - 1  # counted once, not per part


def test_fbgemm_num_calls_counted_once():
    tr = random_trace(5)
    res = replay_partitioned(tr, "lru", "5%", parts=3, cache_model="fbgemm")
    assert res.num_calls == len(tr.batch_starts) - 1
    lfu = replay_partitioned(tr, "lfu", "5%", parts=3, cache_model="fbgemm")
    assert lfu.num_calls == 0  # FBGEMM's LFU populate takes no stats


def test_more_parts_than_sets_still_exact():
    tr = random_trace(7, n=2000)
    one = replay_batch(tr, "lru", 40, ways=32, cache_model="fbgemm")  # 2 sets
    assert one.n_sets == 2
    assert record(replay_partitioned(tr, "lru", 40, parts=5, cache_model="fbgemm")) == record(one)
    full = replay_batch(tr, "lru", "10%", ways=None, cache_model="ideal")  # one set
    assert record(replay_partitioned(tr, "lru", "10%", parts=2, ways=None,
                                     cache_model="ideal")) == record(full)


def test_balance_tables_spreads_load():
    parts = balance_tables(np.array([100, 60, 50, 10]), 2)
    load = np.bincount(parts, weights=[100, 60, 50, 10], minlength=2)
    assert load.tolist() in ([110.0, 110.0],)  # 100+10 and 60+50


def test_bad_jobs_is_a_user_error():
    with pytest.raises(CachesimError, match="--jobs 0"):
        replay_partitioned(random_trace(1, n=500), "lru", "5%", parts=0)


def test_cli_replay_jobs_matches_one_process(shared_data):
    import json

    from click.testing import CliRunner

    from cachesim.cli import cli
    path = str(shared_data / "criteo/kaggle_train_head10k.tsv")
    args = ["replay", path, "--batch-size", "512", "-p", "lru,lfu", "-s", "5%", "--mode", "batch",
            "--json", "-q"]
    one = CliRunner().invoke(cli, args)
    two = CliRunner().invoke(cli, args + ["--jobs", "2"])
    assert one.exit_code == 0 and two.exit_code == 0, (one.output, two.output)
    recs = [json.loads(r.stdout) for r in (one, two)]
    for r in recs:
        for rec in r:
            rec.pop("seconds")
    assert recs[0] == recs[1] and recs[0][0]["misses"] > 0
    bad = CliRunner().invoke(cli, ["replay", path, "--batch-size", "512", "-s", "5%", "--mode",
                                   "batch", "--cache-model", "fbgemm-inference", "--jobs", "2"])
    assert bad.exit_code == 2 and "--jobs 2 splits a replay by cache sets" in bad.output


def test_split_kernels_release_the_gil():
    """The split runs its parts on threads: every kernel a part runs must be compiled with
    nogil, or the threads take turns on one core (the counts would still be right)."""
    from cachesim.policies import setassoc
    from cachesim.simulate import batch, fbgemm, fbgemm_inference, partition
    kernels = [partition._take_chunk, partition._number_set_parts, fbgemm._run,
               batch._replay_batches,
               fbgemm_inference._run_direct, setassoc.kernel, cachesim.get_policy("lru").kernel]
    assert all(k.targetoptions.get("nogil") for k in kernels), [
        k.__name__ for k in kernels if not k.targetoptions.get("nogil")]


def test_split_error_in_a_part_thread_reaches_the_caller(monkeypatch):
    """An error in the other thread's part is raised in the caller, after both stopped."""
    from cachesim.simulate import partition
    monkeypatch.setattr(partition, "MIN_PART_ACCESSES", 1 << 10)
    tr = random_trace(3, n=20_000)
    real, real_keys = partition._Setup.replay, partition._Setup.part_keys

    def replay(self, out, p, chunks):  # the ideal model's parts (taken first)
        if p == 1:
            raise CachesimError("part 1 stopped")
        return real(self, out, p, chunks)

    def part_keys(self, p):  # the fbgemm model's (each thread's part, deduplicated once)
        if p == 1:
            raise CachesimError("part 1 stopped")
        return real_keys(self, p)
    monkeypatch.setattr(partition._Setup, "replay", replay)
    monkeypatch.setattr(partition._Setup, "part_keys", part_keys)
    for model in ("fbgemm", "ideal"):
        with pytest.raises(CachesimError, match="part 1 stopped"):
            replay_partitioned(tr, "lru", "5%", parts=2, cache_model=model)


@pytest.mark.parametrize("policy,per_table,pipe", [("lru", False, False), ("lfu", False, False),
                                                    ("lru", False, True), ("lru", True, False),
                                                    ("lfu", True, False)])
def test_shared_dedupe_over_many_steps_is_exact(monkeypatch, policy, per_table, pipe):
    # the local fbgemm split deduplicates each step's runs once and shares them: steps far
    # smaller than the trace (and than some batches: empty runs), 2 and 3 threads
    from cachesim.simulate import partition
    monkeypatch.setattr(partition, "SHARED_STEP", 700)
    tr = random_trace(11, n_tables=4, n=9000, batch=250)
    kw = dict(ways=32, per_table=per_table, cache_model="fbgemm", prefetch_pipeline=pipe)
    one = replay_batch(tr, policy, "4%", **kw)
    assert one.evictions > 0 and one.hits > 0
    for parts in (2, 3):
        assert record(replay_partitioned(tr, policy, "4%", parts=parts, **kw)) == record(one)


def test_shared_dedupe_error_mid_replay_stops_every_thread(monkeypatch):
    # a part that fails at a later step: the error (not the broken wait it leaves the other
    # thread) reaches the caller, and nothing is left waiting
    import threading

    from cachesim.simulate import fbgemm, partition
    monkeypatch.setattr(partition, "SHARED_STEP", 700)
    tr = random_trace(12, n=9000)
    real = fbgemm.FbgemmCache.run_batches
    calls = {"n": 0}

    def run_batches(self, *a, **kw):
        if threading.current_thread().name.startswith("cachesim-part"):
            calls["n"] += 1
            if calls["n"] == 4:
                raise CachesimError("part stopped at step 3")
        return real(self, *a, **kw)
    monkeypatch.setattr(fbgemm.FbgemmCache, "run_batches", run_batches)
    with pytest.raises(CachesimError, match="part stopped at step 3"):
        replay_partitioned(tr, "lru", "5%", parts=2, cache_model="fbgemm")
    assert not [t for t in threading.enumerate() if t.name.startswith("cachesim-part")]


@pytest.mark.parametrize("model", ["fbgemm", "ideal"])
def test_two_split_replays_at_once_share_no_buffer(monkeypatch, model):
    # the held take buffer goes to one split replay at a time; another at once (another
    # thread, the same trace) gets its own, and both stay exact
    from concurrent.futures import ThreadPoolExecutor

    from cachesim.simulate import partition
    monkeypatch.setattr(partition, "SHARED_STEP", 900)
    tr = random_trace(13, n=12_000)
    want = {cap: record(replay_batch(tr, "lru", cap, ways=32, cache_model=model))
            for cap in ("3%", "6%")}
    with ThreadPoolExecutor(2) as pool:
        for _ in range(3):
            got = list(pool.map(lambda cap: (cap, record(replay_partitioned(
                tr, "lru", cap, parts=2, cache_model=model))), ["3%", "6%"] * 2))
            assert all(rec == want[cap] for cap, rec in got)
