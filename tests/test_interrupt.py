"""Ctrl-C during `cachesim sweep`, with a real SIGINT: a prompt exit (status 130, one line), every
finished configuration kept whole in OUT.parts/, nothing half-written, and a rerun that resumes
and ends with the table of an uninterrupted sweep."""
import json
import os
import signal
import subprocess
import sys
import time

import multiprocessing

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

import cachesim
import cachesim.sweep as sweep_mod
from cachesim import read_trace, run_sweep
from cachesim.cli import cli
from cachesim.sweep import SweepInterrupted, _sigint_held
from cachesim.synth.generate import generate
from cachesim.io.tabular import write_trace

# one fully associative LFU replay of ~2M accesses takes seconds; the three others under one:
# sorted longest first, the first part lands while that long one is still in flight
ARGS = ["-p", "lfu", "-s", "20%,2%", "--ways", "none,32", "--cache-model", "ideal",
        "--precision", "int8", "-j", "2"]
N_CONFIGS = 4
EXIT_WITHIN_S = 5.0   # the old code waited for the configurations in flight (minutes)


def _cmd(trace, out):
    return [sys.executable, "-m", "cachesim", "sweep", str(trace), *ARGS, "-o", str(out)]


def _parts(folder):
    return sorted(p for p in folder.glob("*.json") if p.name != "manifest.json")


def _temp_files(*folders):
    return [p.name for f in folders if f.exists() for p in f.iterdir()
            if p.name.startswith(".") or p.suffix == ".tmp"]


@pytest.mark.slow
def test_sigint_keeps_finished_parts_and_rerun_resumes(tmp_path):
    trace_path = tmp_path / "t.parquet"
    write_trace(generate(80_000, tables=26, rows=100_000, batch_size=128, seed=1), trace_path)
    out = tmp_path / "out.parquet"
    parts = tmp_path / "out.parquet.parts"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cmd(trace_path, out), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not (parts.is_dir() and _parts(parts)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no configuration finished in 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert took < EXIT_WITHIN_S, f"exit took {took:.1f} s after SIGINT"
    kept = _parts(parts)
    assert 1 <= len(kept) < N_CONFIGS
    last = err.strip().splitlines()[-1]
    assert last == (f"cachesim: interrupted; {len(kept)} of {N_CONFIGS} configurations kept in "
                    f"{parts}/, rerun the same command to resume")
    assert "Traceback" not in err
    for p in kept:                                   # whole parts only: each one reads
        data = json.loads(p.read_text())
        assert data["record"]["calls"] > 0
    assert _temp_files(parts, tmp_path) == []        # nothing half-written beside OUT either
    assert not out.exists()

    again = subprocess.run(_cmd(trace_path, out), capture_output=True, text=True, env=env,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    n_left = N_CONFIGS - len(kept)
    assert (f"replayed {n_left} of {N_CONFIGS} configurations ({len(kept)} reused)"
            in again.stderr)
    assert _temp_files(parts, tmp_path) == []
    resumed = pl.read_parquet(out)
    fresh = run_sweep(read_trace(trace_path), "lfu", "20%,2%", ways="none,32",
                      precisions="int8", jobs=2, cache_model="ideal").table
    assert resumed.height == fresh.height == N_CONFIGS
    assert resumed.drop("replay_seconds").equals(fresh.drop("replay_seconds"))


# -- in-process: the same paths, a KeyboardInterrupt raised where a Ctrl-C would land ---------
def _small(n=4000):
    rng = np.random.default_rng(7)
    return cachesim.Trace(table=rng.integers(0, 3, n), row=rng.zipf(1.2, n) % 2000,
                          batch=np.arange(n) // 100, table_dims=[16, 16, 32])


SMALL = dict(policies="lru,lfu", sizes="2%,10%", ways="none", precisions="int8",
             cache_model="ideal")


def test_sigint_is_held_off_while_a_part_is_written():
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with _sigint_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.01)                 # the handler runs here: it only takes note
            reached.append("end of the write")
    assert reached == ["end of the write"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with _sigint_held():                     # no signal: nothing raised
        pass


def test_interrupted_serial_sweep_keeps_finished_parts_and_resumes(tmp_path, monkeypatch):
    tr = _small()
    out = tmp_path / "r.parquet"
    real = sweep_mod.replay_config
    calls = []

    def replay_then_ctrl_c(trace, cfg):
        calls.append(cfg.key)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(trace, cfg)
    monkeypatch.setattr(sweep_mod, "replay_config", replay_then_ctrl_c)
    with pytest.raises(SweepInterrupted) as err:
        run_sweep(tr, out=out, jobs=1, **SMALL)
    parts = sweep_mod.parts_dir(out)
    assert (err.value.kept, err.value.total, err.value.folder) == (2, 4, parts)
    assert str(err.value) == (f"interrupted; 2 of 4 configurations kept in {parts}/, rerun the "
                              "same command to resume")
    assert sorted(p.stem for p in parts.glob("*.json") if p.name != "manifest.json") == sorted(
        calls[:2])
    assert not out.exists() and not list(tmp_path.glob(".*")) and not list(parts.glob(".*"))
    monkeypatch.setattr(sweep_mod, "replay_config", real)
    again = run_sweep(tr, out=out, jobs=1, **SMALL)
    assert sorted(again.reused) == sorted(calls[:2]) and len(again.ran) == 2
    fresh = run_sweep(tr, jobs=1, **SMALL)
    assert again.table.drop("replay_seconds").equals(fresh.table.drop("replay_seconds"))


def test_interrupted_pool_ends_its_workers(tmp_path, monkeypatch):
    real = sweep_mod._save_part
    saved = []

    def save_then_ctrl_c(folder, cfg, rec):
        os.kill(os.getpid(), signal.SIGINT)   # a real Ctrl-C in the middle of the first write
        time.sleep(0.01)
        real(folder, cfg, rec)
        saved.append(cfg.key)
    monkeypatch.setattr(sweep_mod, "_save_part", save_then_ctrl_c)
    out = tmp_path / "r.json"
    before = set(multiprocessing.active_children())  # (another test's, still ending)
    with pytest.raises(SweepInterrupted) as err:
        run_sweep(_small(), out=out, jobs=2, **SMALL)
    assert err.value.kept == 1 and len(saved) == 1     # the write finished, then it stopped
    part = sweep_mod.parts_dir(out) / f"{saved[0]}.json"
    assert json.loads(part.read_text())["config"]["policy"] in ("lru", "lfu")
    assert set(multiprocessing.active_children()) <= before  # none of its workers left running


def test_cli_interrupt_is_one_line_and_status_130(tmp_path, monkeypatch):
    trace_file = tmp_path / "keys.txt"
    trace_file.write_text("\n".join(map(str, np.random.default_rng(5).integers(0, 300, 500))))

    def ctrl_c(trace, cfg):
        raise KeyboardInterrupt
    monkeypatch.setattr(sweep_mod, "replay_config", ctrl_c)
    out = tmp_path / "res.parquet"
    res = CliRunner().invoke(cli, ["sweep", str(trace_file), "--mode", "access", "-p", "lru",
                                   "-s", "5%", "--ways", "none", "-o", str(out), "-j", "1"])
    assert res.exit_code == 130
    assert res.stderr == (f"cachesim: interrupted; 0 of 1 configurations kept in "
                          f"{out}.parts/, rerun the same command to resume\n")


def test_a_workers_error_is_raised_in_the_parent_and_no_worker_is_left(monkeypatch):
    real = sweep_mod.replay_config

    def fails_on_lfu(trace, cfg):  # (fork: the workers inherit the patched module)
        if cfg.policy == "lfu":
            raise cachesim.CachesimError("lfu refused here")
        return real(trace, cfg)
    monkeypatch.setattr(sweep_mod, "replay_config", fails_on_lfu)
    monkeypatch.setattr(sweep_mod, "_mp_context", lambda trace=None: multiprocessing.get_context(
        "fork"))
    before = set(multiprocessing.active_children())
    with pytest.raises(cachesim.CachesimError, match="^lfu refused here$") as err:
        run_sweep(_small(), jobs=2, **SMALL)
    assert "fails_on_lfu" in str(err.value.__cause__)   # the worker's traceback, as the cause
    assert set(multiprocessing.active_children()) <= before


def test_a_worker_killed_mid_replay_is_one_clear_error(tmp_path, monkeypatch):
    real = sweep_mod.replay_config

    def killed_on_lfu(trace, cfg):  # what the kernel's out-of-memory killer does
        if cfg.policy == "lfu" and cfg.size == "10%":
            os.kill(os.getpid(), signal.SIGKILL)
        return real(trace, cfg)
    monkeypatch.setattr(sweep_mod, "replay_config", killed_on_lfu)
    monkeypatch.setattr(sweep_mod, "_mp_context", lambda trace=None: multiprocessing.get_context(
        "fork"))
    before = set(multiprocessing.active_children())
    out = tmp_path / "r.parquet"
    with pytest.raises(cachesim.CachesimError) as err:
        run_sweep(_small(), out=out, jobs=2, **SMALL)
    assert str(err.value) == (
        "a sweep worker was killed by signal 9 while replaying lfu 10% ways none (signal 9 is "
        "most often the kernel's out-of-memory killer); finished configurations are kept "
        "(with -o); rerun with fewer jobs (-j)")
    assert set(multiprocessing.active_children()) <= before
    kept = [json.loads(p.read_text())["config"] for p in sweep_mod.parts_dir(out).glob("*.json")
            if p.name != "manifest.json"]
    assert len(kept) <= 3 and all((c["policy"], c["size"]) != ("lfu", "10%") for c in kept)
