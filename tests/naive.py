"""Slow, obviously-right twins of every kernel, in plain Python.

Each access-mode oracle takes a list of keys (and optional sizes), a capacity (rows when
`unit`, else bytes) and returns (hits, misses, miss_bytes, evictions) where miss_bytes is the sum
of the sizes of missed accesses (0 when no sizes are given). The byte-capacity rules are
libCacheSim's: a miss on every access to a non-resident object; an object larger than the cache
is not inserted; on a miss evict until used + size <= capacity, then insert; a hit does not
update the stored size.
"""
from __future__ import annotations

from collections import OrderedDict


def _sizes(keys, sizes):
    return [1] * len(keys) if sizes is None else list(sizes)


def lru(keys, capacity, sizes=None, unit=True):
    """LRU with an OrderedDict (last = most recent)."""
    cache = OrderedDict()  # key -> stored size
    used = hits = misses = miss_bytes = evictions = 0
    for k, s in zip(keys, _sizes(keys, sizes)):
        if k in cache:
            hits += 1
            cache.move_to_end(k)
            continue
        misses += 1
        miss_bytes += s if sizes is not None else 0
        need = 1 if unit else s
        if need > capacity:
            continue
        while used + need > capacity:
            _, vs = cache.popitem(last=False)
            used -= 1 if unit else vs
            evictions += 1
        cache[k] = s
        used += need
    return hits, misses, miss_bytes, evictions


# -- access-mode policies (fifo, lfu, clock, random, opt) ----------------------------------------

def _replay_with_victim(keys, capacity, sizes, unit, on_hit, on_insert, pick_victim):
    """The common request loop: `cache` maps key -> stored size; pick_victim(cache, i) names the
    key to evict; on_hit(k, i) and on_insert(k, i) update the policy's own bookkeeping."""
    cache = {}
    used = hits = misses = miss_bytes = evictions = 0
    for i, (k, s) in enumerate(zip(keys, _sizes(keys, sizes))):
        if k in cache:
            hits += 1
            on_hit(k, i)
            continue
        misses += 1
        miss_bytes += s if sizes is not None else 0
        need = 1 if unit else s
        if need > capacity:
            continue
        while used + need > capacity:
            vs = cache.pop(pick_victim(cache, i))
            used -= 1 if unit else vs
            evictions += 1
        cache[k] = s
        used += need
        on_insert(k, i)
    return hits, misses, miss_bytes, evictions


def fifo(keys, capacity, sizes=None, unit=True):
    """FIFO: the victim is the resident inserted first (dicts keep insertion order)."""
    return _replay_with_victim(keys, capacity, sizes, unit, lambda k, i: None,
                               lambda k, i: None, lambda cache, i: next(iter(cache)))


def lfu(keys, capacity, sizes=None, unit=True):
    """LFU: scan the residents for the lowest (count, time of last access)."""
    count, last = {}, {}

    def hit(k, i):
        count[k] += 1
        last[k] = i

    def insert(k, i):
        count[k] = 1
        last[k] = i

    def victim(cache, i):
        v = min(cache, key=lambda r: (count[r], last[r]))
        del count[v], last[v]
        return v

    return _replay_with_victim(keys, capacity, sizes, unit, hit, insert, victim)


def clock(keys, capacity, sizes=None, unit=True):
    """Clock with one bit: a list as the queue (front = tail = oldest)."""
    queue, bit = [], {}

    def hit(k, i):
        bit[k] = 1

    def insert(k, i):
        queue.append(k)
        bit[k] = 0

    def victim(cache, i):
        while bit[queue[0]]:
            bit[queue[0]] = 0
            queue.append(queue.pop(0))
        v = queue.pop(0)
        del bit[v]
        return v

    return _replay_with_victim(keys, capacity, sizes, unit, hit, insert, victim)


_MASK64 = (1 << 64) - 1


def splitmix64(state):
    """(new state, output) of SplitMix64, all mod 2^64."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return state, z ^ (z >> 31)


def random_evict(keys, capacity, sizes=None, unit=True, seed=0):
    """Random: residents in a list; the victim is residents[splitmix64() % len], swap-removed."""
    residents, rng = [], [seed % (1 << 64)]

    def insert(k, i):
        residents.append(k)

    def victim(cache, i):
        rng[0], x = splitmix64(rng[0])
        j = x % len(residents)
        v = residents[j]
        residents[j] = residents[-1]
        residents.pop()
        return v

    return _replay_with_victim(keys, capacity, sizes, unit, lambda k, i: None, insert, victim)


def opt(keys, capacity, sizes=None, unit=True):
    """Belady: scan the future for each resident's next access; never again is farthest, and
    among those the one accessed most recently goes first."""
    last = {}

    def touch(k, i):
        last[k] = i

    def victim(cache, i):
        def distance(r):
            for j in range(i + 1, len(keys)):
                if keys[j] == r:
                    return (0, j)
            return (1, last[r])
        return max(cache, key=distance)

    return _replay_with_victim(keys, capacity, sizes, unit, touch, touch, victim)


# -- sieve, arc, s3fifo, set-associative ---------------------------------------------------------

def _bytes_rules(keys, sizes, unit):
    """(key, size counted in the cache, size of the access) for each access."""
    for k, s in zip(keys, _sizes(keys, sizes)):
        yield k, (1 if unit else s), s


def sieve(keys, capacity, sizes=None, unit=True):
    """SIEVE: a FIFO list with one visited bit per object and a hand that walks from the oldest
    towards the newest, clearing visited bits, and evicts the first unvisited object it meets; the
    hand stays where it stopped (on the next-newer object) and wraps to the oldest."""
    order = []          # oldest first
    size_of, visited = {}, {}
    hand = None         # key the hand points at; None: start from the oldest
    used = hits = misses = miss_bytes = evictions = 0
    for k, need, s in _bytes_rules(keys, sizes, unit):
        if k in size_of:
            hits += 1
            visited[k] = True
            continue
        misses += 1
        miss_bytes += s if sizes is not None else 0
        if need > capacity:
            continue
        while used + need > capacity:
            i = 0 if hand is None else order.index(hand)
            while visited[order[i]]:
                visited[order[i]] = False
                i = (i + 1) % len(order)
            victim = order.pop(i)
            hand = order[i] if i < len(order) else None
            used -= size_of.pop(victim)
            del visited[victim]
            evictions += 1
        order.append(k)
        size_of[k] = need
        visited[k] = False
        used += need
    return hits, misses, miss_bytes, evictions


def _arc_step(other, own):
    """max(other / own, 1), with C's float result when own is 0 (zero-size ghosts)."""
    if own == 0:
        return float("inf") if other > 0 else 1.0
    return max(other / own, 1.0)


def arc(keys, capacity, sizes=None, unit=True):
    """ARC as libCacheSim runs it with sizes: T1/T2 hold data, B1/B2 ghosts (each an LRU list,
    last = most recent), all sizes in bytes and p a float. A ghost hit is a miss that moves p
    (by max(|B2|/|B1|, 1) towards T1's side for B1, the reverse for B2), drops the ghost and
    inserts into T2; other misses insert into T1. Each eviction step either replaces (ghost hit)
    or first trims a ghost list (L1 = T1+B1 over capacity: drop B1's LRU, or if B1 is empty
    evict T1's LRU outright; else drop B2's LRU when all four reach 2 x capacity)."""
    t1, t2, b1, b2 = OrderedDict(), OrderedDict(), OrderedDict(), OrderedDict()
    p = 0.0
    hits = misses = miss_bytes = evictions = 0

    def total(d):
        return sum(d.values())

    for k, need, s in _bytes_rules(keys, sizes, unit):
        ghost_hit = None
        if k in t1:
            hits += 1
            t2[k] = t1.pop(k)
            continue
        if k in t2:
            hits += 1
            t2.move_to_end(k)
            continue
        if k in b1:
            p = min(p + _arc_step(total(b2), total(b1)), float(capacity))
            del b1[k]
            ghost_hit = 1
        elif k in b2:
            p = max(p - _arc_step(total(b1), total(b2)), 0.0)
            del b2[k]
            ghost_hit = 2
        misses += 1
        miss_bytes += s if sizes is not None else 0
        if need > capacity:
            continue

        def replace():
            nonlocal evictions
            s1 = total(t1)
            if (s1 > 0 and (s1 > p or (s1 == p and ghost_hit == 2))) or total(t2) == 0:
                v, vs = t1.popitem(last=False)
                b1[v] = vs
            else:
                v, vs = t2.popitem(last=False)
                b2[v] = vs
            evictions += 1

        while total(t1) + total(t2) + need > capacity:
            if ghost_hit:
                replace()
            elif total(t1) + total(b1) + need > capacity:
                if total(b1) > 0:
                    b1.popitem(last=False)
                    replace()
                else:
                    t1.popitem(last=False)
                    evictions += 1
            else:
                full = total(t1) + total(b1) + total(t2) + total(b2) >= 2 * capacity
                if full and total(b2) > 0:
                    b2.popitem(last=False)
                replace()
        (t2 if ghost_hit else t1)[k] = need
    return hits, misses, miss_bytes, evictions


def s3fifo(keys, capacity, sizes=None, unit=True, early_main=True):
    """S3-FIFO as libCacheSim runs it: a small FIFO of int(0.1 x capacity), a main FIFO of the
    rest, a ghost FIFO of int(0.9 x capacity) holding keys evicted from the small one.
    A hit adds 1 to the object's count. A miss on a ghost key inserts into main; any other miss
    inserts into small (into main while small is full and nothing was ever evicted); an object
    is not cached when size > small, nor (outside the ghost path) when size >= small.
    Evicting: from main when main is over its share or small is empty, else from small.
    Small's oldest goes to main when its count >= 2 (count reset to 0), else to the ghost.
    Main's oldest with count >= 1 is reinserted with min(count, 3) - 1, else evicted.
    `early_main=False`: libCacheSim before commit 035d832 (October 2024 checkouts), without the
    "into main while small is full and nothing was ever evicted" rule."""
    small_cap = int(capacity * 0.1)
    main_cap = capacity - small_cap
    ghost_cap = int(capacity * 0.9)
    small, main, ghost = OrderedDict(), OrderedDict(), OrderedDict()  # key -> [size, count]
    ever_evicted = False
    hits = misses = miss_bytes = evictions = 0

    def total(d):
        return sum(v[0] for v in d.values())

    def evict_small():
        nonlocal evictions
        while total(small) > 0:
            v, (vs, cnt) = small.popitem(last=False)
            if cnt >= 2:
                main[v] = [vs, 0]
            else:
                evictions += 1
                if ghost_cap > 0 and v not in ghost and vs <= ghost_cap:
                    while total(ghost) + vs > ghost_cap:
                        ghost.popitem(last=False)
                    ghost[v] = [vs, 0]
                return

    def evict_main():
        nonlocal evictions
        while total(main) > 0:
            v, (vs, cnt) = main.popitem(last=False)
            if cnt >= 1:
                main[v] = [vs, min(cnt, 3) - 1]
            else:
                evictions += 1
                return

    for k, need, s in _bytes_rules(keys, sizes, unit):
        if k in small or k in main:
            hits += 1
            (small if k in small else main)[k][1] += 1
            continue
        from_ghost = ghost.pop(k, None) is not None
        misses += 1
        miss_bytes += s if sizes is not None else 0
        if need > small_cap or need > capacity:
            continue
        while total(small) + total(main) + need > capacity:
            ever_evicted = True
            if total(main) > main_cap or total(small) == 0:
                evict_main()
            else:
                evict_small()
        if from_ghost:
            main[k] = [need, 0]
        elif need >= small_cap:
            continue
        elif early_main and not ever_evicted and total(small) >= small_cap:
            main[k] = [need, 0]
        else:
            small[k] = [need, 0]
    return hits, misses, miss_bytes, evictions


def set_associative(keys, capacity, ways, rule="lru"):
    """A W-way set-associative cache of `capacity` rows: S = ceil(capacity / ways) sets, a key
    lives in set fmix64(key) mod S (`keys` are the linearised keys). A miss takes the set's lowest
    empty way; in a full set the victim is the least recently used way (rule "lru"), the one
    filled first ("fifo"), or the lowest count (1 on insertion, +1 per hit), ties least recently
    used ("lfu"). Returns (hits, misses, 0, evictions)."""
    n_sets = -(-capacity // ways)
    sets = {}   # set index -> its ways (each None or a dict), made when first used
    hits = misses = evictions = 0
    for now, k in enumerate(keys):
        ways_of_set = sets.setdefault(fmix64(k) % n_sets, [None] * ways)
        line = next((w for w in ways_of_set if w is not None and w["key"] == k), None)
        if line is not None:
            hits += 1
            line["count"] += 1
            line["last_use"] = now
            continue
        misses += 1
        empty = [i for i, w in enumerate(ways_of_set) if w is None]
        if empty:
            i = empty[0]
        else:
            evictions += 1
            if rule == "lru":
                i = min(range(ways), key=lambda j: ways_of_set[j]["last_use"])
            elif rule == "fifo":
                i = min(range(ways), key=lambda j: ways_of_set[j]["inserted"])
            else:
                i = min(range(ways), key=lambda j: (ways_of_set[j]["count"],
                                                     ways_of_set[j]["last_use"]))
        ways_of_set[i] = {"key": k, "count": 1, "last_use": now, "inserted": now}
    return hits, misses, 0, evictions


# -- batch mode (embedding-cache semantics) ------------------------------------------------------

_M64 = (1 << 64) - 1


def fmix64(k):
    """MurmurHash3's 64-bit finaliser on a Python int."""
    k &= _M64
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    k ^= k >> 33
    return k


def batch_replay(keys, tables, batches, n_tables, policy, capacity, ways):
    """The five batch rules of BATCH_API.md, literally, with dicts and lists.

    `keys`: linearised key per access; `tables`: its table; `batches`: batch id per access
    (consecutive equal ids form a batch); `capacity`: rows of one cache over all tables (int) or
    a list of rows, one cache per table; `ways`: None for fully associative.
    Returns (totals, per_table, steps): totals and per_table[name] (a list per table) of the
    counters; one step per batch: {"slot": {key: line or -1}, "was_hit": {key: bool},
    "evicted": sorted [(line, key)], "filled": sorted [(line, key)]}.
    Lines are numbered cache after cache (table order), set * W + way inside a cache.
    `policy` "fifo" is FIFO by fill stamp (the rule tests/batch_fifo_plugin.py declares): LRU's
    rules except that a hit does not restamp its line.
    """
    lfu = policy == "lfu"
    restamp = policy == "lru"
    caps = [capacity] if isinstance(capacity, int) else list(capacity)
    caches = []  # per cache: W, S, first line
    first = 0
    for c in caps:
        w = c if ways is None else min(ways, c)
        s = -(-c // w)
        caches.append((w, s, first))
        first += s * w
    line_key = [None] * first    # key in each line
    stamp = [0] * first
    where = {}                   # key -> line
    count = {}                   # key -> accesses so far (LFU)
    table_of = {}
    names = ("requested_indices", "unique_indices", "unique_misses", "conflict_unique_misses",
             "conflict_misses", "evictions", "misses")
    per_table = {n: [0] * n_tables for n in names}

    def lines_of(key):
        w, s, first_line = caches[0] if len(caches) == 1 else caches[table_of[key]]
        st = fmix64(key) % s
        return [first_line + st * w + way for way in range(w)]

    groups = []
    for k, t, b in zip(keys, tables, batches):
        if not groups or groups[-1][0] != b:
            groups.append((b, []))
        groups[-1][1].append(k)
        table_of[k] = t
    steps = []
    for b, (_, batch) in enumerate(groups, start=1):
        uses = {}
        for k in batch:
            uses[k] = uses.get(k, 0) + 1
        # rule 3
        if lfu:
            for k in batch:
                count[k] = count.get(k, 0) + 1
        was_hit, missing = {}, []
        for k in sorted(uses):
            t = table_of[k]
            per_table["requested_indices"][t] += uses[k]
            per_table["unique_indices"][t] += 1
            if k in where:
                was_hit[k] = True
                if restamp:
                    stamp[where[k]] = b
            else:
                was_hit[k] = False
                per_table["unique_misses"][t] += 1
                per_table["misses"][t] += uses[k]  # every access to a key missing at the start
                missing.append(k)
        # rule 4
        by_set = {}
        for k in missing:
            by_set.setdefault(tuple(lines_of(k)), []).append(k)
        evicted, filled = [], []
        for lines, keys_here in by_set.items():
            if lfu:
                keys_here.sort(key=lambda k: (-count[k], k))
            else:
                keys_here.sort()
            empty = [ln for ln in lines if line_key[ln] is None]
            unused = [ln for ln in lines if line_key[ln] is not None and line_key[ln] not in uses]
            if lfu:
                unused.sort(key=lambda ln: (count[line_key[ln]], stamp[ln], ln))
            else:
                unused.sort(key=lambda ln: (stamp[ln], ln))
            free = empty + unused
            for k in keys_here:
                if free:
                    ln = free[0]
                    old = line_key[ln]
                    if not lfu or old is None or count[k] >= count[old]:
                        free.pop(0)
                        if old is not None:
                            del where[old]
                            per_table["evictions"][table_of[old]] += 1
                            evicted.append((ln, old))
                        line_key[ln] = k
                        stamp[ln] = b
                        where[k] = ln
                        filled.append((ln, k))
                        continue
                per_table["conflict_unique_misses"][table_of[k]] += 1
        # rule 5
        for k, n in uses.items():
            if k not in where:
                per_table["conflict_misses"][table_of[k]] += n
        steps.append({"slot": {k: where.get(k, -1) for k in uses}, "was_hit": was_hit,
                      "evicted": sorted(evicted), "filled": sorted(filled)})
    totals = {n: sum(v) for n, v in per_table.items()}
    totals["calls"] = len(groups)
    return totals, per_table, steps

# -- trace formats ---------------------------------------------------------------------------------

def dense_remap(keys):
    """(dense ids in order of first appearance, the distinct keys in that order)."""
    ids, distinct = {}, []
    for k in keys:
        if k not in ids:
            ids[k] = len(distinct)
            distinct.append(k)
    return [ids[k] for k in keys], distinct


def dlrm_dictionary(values):
    """DLRM-style row ids: None (missing) -> 0, other values 1, 2, ... by first appearance."""
    ids = {}
    out = []
    for v in values:
        if v is None:
            out.append(0)
        else:
            out.append(ids.setdefault(v, len(ids) + 1))
    return out, len(ids) + 1


def first_bad_line(text: bytes, sep: bytes, expected: int):
    """(0-based line, fields; 0 for an empty line) of the first line without `expected` fields,
    else (-1, 0). A final newline ends the last line; '\\r' does not make a line non-empty."""
    lines = text.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for i, ln in enumerate(lines):
        fields = ln.count(sep) + 1
        if fields != expected:
            return i, (0 if ln.replace(b"\r", b"") == b"" else fields)
    return -1, 0


# -- analysis (stack distances, curves) ----------------------------------------------------------


def reuse_times(keys):
    """Accesses since the previous access to the same key (-1 for a first access)."""
    last, out = {}, []
    for i, k in enumerate(keys):
        out.append(i - last[k] if k in last else -1)
        last[k] = i
    return out


def copy_from_earlier(vals, src):
    """vals[i] = vals[src[i]] in order where src[i] >= 0."""
    out = list(vals)
    for i, j in enumerate(src):
        if j >= 0:
            out[i] = out[j]
    return out


def lru_stack_generate(tables, depths):
    """Per access: table t's row at LRU depth d (0 = most recent) of t's list stack, or a new row
    (numbered 0, 1, ... per table) when d < 0 or the stack is not that deep."""
    stacks, new, out = {}, {}, []
    for t, d in zip(tables, depths):
        stack = stacks.setdefault(t, [])
        if 0 <= d < len(stack):
            row = stack.pop(d)
        else:
            row = new.get(t, 0)
            new[t] = row + 1
        stack.insert(0, row)
        out.append(row)
    return out


def stack_distances(keys):
    """LRU stack depth - 1 of every access (-1 for a first access), with a plain list stack."""
    stack, out = [], []
    for k in keys:
        if k in stack:
            i = stack.index(k)
            out.append(i)
            stack.pop(i)
        else:
            out.append(-1)
        stack.insert(0, k)
    return out


def fmix64(k):
    """MurmurHash3's 64-bit finaliser on a Python int."""
    m = (1 << 64) - 1
    k &= m
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & m
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & m
    k ^= k >> 33
    return k


def shards_fixed_rate(keys, tmax):
    """SHARDS at a fixed rate: {sampled stack distance: count} over the keys with
    fmix64(key) <= tmax, and the number of sampled references."""
    sampled = [k for k in keys if fmix64(k) <= tmax]
    hist = {}
    for d in stack_distances(sampled):
        if d >= 0:
            hist[d] = hist.get(d, 0) + 1
    return hist, len(sampled)


def shards_fixed_size(keys, tmax, s_max):
    """Fixed-size SHARDS: keep at most s_max sampled keys; a new key beyond that drops the key
    with the largest hash and lowers tmax below it. Each reference at rate R adds 1/R to the
    bucket floor(d / R) (d the distance among the kept keys). Returns (buckets, total weight,
    final rate): multiply the weights by the final rate to get SHARDS' rescaled counts."""
    two64 = float(1 << 64)
    stack, hist, total = [], {}, 0.0
    rate = (tmax + 1) / two64
    for k in keys:
        h = fmix64(k)
        if h > tmax:
            continue
        w = 1.0 / rate
        total += w
        if k in stack:
            d = stack.index(k)
            b = int(d * (1.0 / rate) / 1.0)
            hist[b] = hist.get(b, 0.0) + w
            stack.pop(d)
            stack.insert(0, k)
            continue
        stack.insert(0, k)
        if len(stack) > s_max:
            e = max(stack, key=fmix64)
            tmax = fmix64(e) - 1
            rate = (tmax + 1) / two64
            stack.remove(e)
    return hist, total, rate


def lru_curve(keys):
    """Miss ratio of LRU at every size 0..distinct keys, one replay per size."""
    n_distinct = len(set(keys))
    return [1.0] + [lru(keys, c)[1] / len(keys) for c in range(1, n_distinct + 1)]
