"""Run directories under Ctrl-C, concurrency and reruns (issue 8, items 12, 14 and 18).

- Ctrl-C during training finishes the step, writes a checkpoint there and says where it stopped;
  the rerun resumes bit-identically. Through the CLI: exit status 130, no traceback, the command to
  resume. Ctrl-C during a sweep stops its workers and says how many cells are cached.
- A run directory is locked while a run works in it: a second process is refused with the pid
  and host of the holder; a lock left by a dead process never blocks.
- Rerunning a finished train-rbm reads its result.json instead of running AIS again, unless the
  AIS settings differ. `physamp sample` writes beside its checkpoint, with the whole title.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch

from physamp.cli import main
from physamp.experiments.sweep import SweepInterrupted, cell_key, load_cached, run_sweep
from physamp.models.rbm import RBMTrainConfig, RBMTrainer, train_and_evaluate
from physamp.training import (
    FileLock,
    RunDirectoryError,
    TrainingInterrupted,
    TrainLoop,
    load_checkpoint,
    read_metrics,
    run_dir_lock,
)

from conftest import tiny_train_args

TINY = tiny_train_args(epochs=1)


@pytest.fixture(autouse=True)
def _ctrl_c_reaches_python():
    """These tests press Ctrl-C. A shell that starts pytest as a background job (``cmd &``, nohup)
    sets SIGINT to be ignored, and the loop rightly leaves an ignored Ctrl-C alone; give the tests
    Python's own handler, as an interactive terminal would."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def toy_data(n=64, d=16, seed=0):
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed))


def small_cfg(**kw):
    return RBMTrainConfig(**{**dict(n_hidden=8, epochs=3, batch_size=16, k=2, num_chains=10), **kw})


# --- Ctrl-C --------------------------------------------------------------------------------------------
def test_ctrl_c_finishes_the_step_writes_a_checkpoint_and_the_rerun_is_bit_identical(tmp_path, capsys):
    cfg = small_cfg()
    full = RBMTrainer(cfg, toy_data())
    full.fit(run_dir=tmp_path / "full", progress=False, log_every=1)

    cut = RBMTrainer(cfg, toy_data())

    def press_ctrl_c(loop, step, metrics):
        if step == 6:  # a real SIGINT, in the middle of the run (between steps 6 and 7)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as stop:
        cut.fit(run_dir=tmp_path / "cut", progress=False, log_every=1, callbacks=[press_ctrl_c])
    assert (stop.value.step, stop.value.total_steps, stop.value.checkpoint_step) == (6, 12, 6)
    assert stop.value.steps_per_epoch == 4
    assert str(stop.value) == (
        f"training stopped at step 6 of 12 (epoch 1 of 3 done); the checkpoint {tmp_path / 'cut'}"
        "/checkpoint.pt holds it"
    )
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["step"] == 6
    assert "stopping after this step" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler given back

    resumed = RBMTrainer(cfg, toy_data())
    resumed.fit(run_dir=tmp_path / "cut", progress=False, log_every=1)
    for name in ("W", "b", "c"):
        assert torch.equal(getattr(full.rbm, name), getattr(resumed.rbm, name)), name
    strip = lambda rows: [{k: v for k, v in r.items() if k != "time_s"} for r in rows]  # noqa: E731
    assert strip(read_metrics(tmp_path / "full" / "metrics.jsonl")) == strip(
        read_metrics(tmp_path / "cut" / "metrics.jsonl")
    )


def test_a_second_ctrl_c_stops_at_once_and_names_the_last_checkpoint(tmp_path):
    tr = RBMTrainer(small_cfg(), toy_data())

    def press_twice(loop, step, metrics):
        if step == 6:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as stop:
        tr.fit(run_dir=tmp_path / "r", progress=False, checkpoint_every=4, callbacks=[press_twice])
    assert (stop.value.step, stop.value.checkpoint_step) == (6, 4)
    assert "holds step 4 of 12 (epoch 1 of 3 done)" in str(stop.value)


def _popen_with_ctrl_c(argv, **kw):
    """A child process in which Ctrl-C (SIGINT) is not ignored (a background shell job ignores it)."""
    return subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kw,
    )


def _wait_for(predicate, timeout=120.0):
    t0 = time.time()
    while not predicate():
        if time.time() - t0 > timeout:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_ctrl_c_in_train_rbm_exits_130_with_where_and_how_to_resume(tmp_path):
    run = tmp_path / "run"
    argv = [*TINY, "--epochs", "500", "--run-dir", str(run)]
    proc = _popen_with_ctrl_c([sys.executable, "-m", "physamp.cli", *argv])
    _wait_for(lambda: (run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().strip())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    step = load_checkpoint(run / "checkpoint.pt")["step"]
    assert 0 < step < 500 * 20
    assert f"training stopped at step {step:,} of 10,000" in err
    assert f"the checkpoint {run}/checkpoint.pt holds it" in err
    assert "To resume, run the same command again:" in err and f"--run-dir {run}" in err


def test_ctrl_c_after_training_says_the_model_is_saved(tmp_path, capsys, monkeypatch):
    import physamp.models.rbm.evaluate as evaluate

    def interrupted_ais(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(evaluate, "evaluate_nll", interrupted_ais)
    run = tmp_path / "run"
    assert main([*TINY, "--run-dir", str(run)]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"training had finished (the model is in {run}/checkpoint.pt)" in err
    assert "stopped during the AIS evaluation" in err and "physamp train-rbm --dataset" in err
    # a command without partial state says so
    argv = [
        "ais",
        str(run / "checkpoint.pt"),
        "--dataset",
        "mnist-bundled",
        "--ais-betas",
        "5",
        "--no-progress",
    ]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "this command keeps no partial state" in err and "Traceback" not in err
    # the rerun evaluates the trained model without training it again
    monkeypatch.undo()
    steps = []
    monkeypatch.setattr(RBMTrainer, "step", lambda self, step: steps.append(step))
    assert main([*TINY, "--run-dir", str(run)]) == 0
    assert steps == [] and (run / "result.json").exists()


def slow_cell(cell):
    time.sleep(cell["sleep"])
    return {"nll": float(cell["x"])}


def test_ctrl_c_stops_a_sweep_and_its_workers_and_says_what_is_cached(tmp_path):
    cells = [{"x": 0, "sleep": 0.0}, {"x": 1, "sleep": 60.0}, {"x": 2, "sleep": 60.0}]
    timer = threading.Timer(8.0, lambda: signal.raise_signal(signal.SIGINT))  # Ctrl-C in the main thread
    timer.start()
    t0 = time.time()
    try:
        with pytest.raises(SweepInterrupted) as stop:
            run_sweep(slow_cell, cells, tmp_path / "cache", workers=2, progress=False)
    finally:
        timer.cancel()
    assert time.time() - t0 < 40  # the workers were stopped, not waited for
    assert (stop.value.done, stop.value.total) == (1, 3)
    assert str(stop.value) == (
        f"sweep stopped with 1 of 3 cells finished and cached in {tmp_path / 'cache'} "
        "(finished cells are not recomputed)"
    )
    assert load_cached(tmp_path / "cache", cells[0]) is not None


def test_ctrl_c_in_an_experiment_exits_130(tmp_path, capsys, monkeypatch):
    from physamp.experiments import removed_connections as rc_exp

    calls = []

    def run_cell(cell):
        calls.append(cell)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return {"nll": 1.0}

    monkeypatch.setattr(rc_exp, "run_cell", run_cell)
    out = tmp_path / "out"
    rc = main(["experiment", "removed-connections", "--out", str(out), "--workers", "1", "--no-progress"])
    assert rc == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"sweep stopped with 1 of 3 cells finished and cached in {out / 'cache'}" in err
    assert "physamp experiment removed-connections --out" in err


# --- locks ---------------------------------------------------------------------------------------------
HOLD = textwrap.dedent(
    """
    import sys, time
    from physamp.training import run_dir_lock
    with run_dir_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(120)
    """
)


def test_a_second_train_rbm_in_a_locked_run_directory_names_the_holder(tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert main([*TINY, "--run-dir", str(run)]) == 2
        err = capsys.readouterr().err
        assert f"run directory {run} is in use by pid {holder.pid} on host {socket.gethostname()}" in err
        assert "Traceback" not in err
        assert not (run / "checkpoint.pt").exists() and not (run / "config.json").exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without giving the lock back: the OS did, and the next run takes it over
    assert json.loads((run / ".lock").read_text())["pid"] == holder.pid  # a stale lock file
    assert main([*TINY, "--run-dir", str(run)]) == 0
    assert (run / ".lock").read_text() == ""  # given back at the end


def test_two_train_loops_in_two_processes_cannot_share_a_run_directory(tmp_path):
    """The TrainLoop itself takes the lock (not only train_and_evaluate)."""
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        tr = RBMTrainer(small_cfg(), toy_data())
        with pytest.raises(RunDirectoryError, match=f"is in use by pid {holder.pid}"):
            tr.fit(run_dir=run, progress=False)
        assert not (run / "metrics.jsonl").exists()
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_held_while_the_loop_runs_and_given_back_after(tmp_path):
    tr = RBMTrainer(small_cfg(epochs=1), toy_data())
    seen = []

    def probe(loop, step, metrics):
        seen.append(json.loads((tmp_path / "r" / ".lock").read_text())["pid"])

    loop = TrainLoop(
        tr.step,
        total_steps=tr.total_steps,
        state=tr.state(),
        run_dir=tmp_path / "r",
        config=tr.config_dict(),
        progress=False,
        callbacks=[probe],
    )
    loop.run()
    assert seen and set(seen) == {os.getpid()}
    assert (tmp_path / "r" / ".lock").read_text() == ""
    with FileLock(tmp_path / "r" / ".lock"):  # free for anyone now
        pass


def test_file_lock_is_reentrant_in_one_process_and_exclusive_across_processes(tmp_path):
    lock = FileLock(tmp_path / "x.lock")
    with lock:
        assert lock.held
        with FileLock(tmp_path / "x.lock") as nested:  # this process may take it again, nested
            assert nested.held
        assert lock.held  # still held by the outer one
        code = f"from physamp.training import FileLock; FileLock({str(tmp_path / 'x.lock')!r}).acquire()"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode != 0 and f"is in use by pid {os.getpid()}" in other.stderr
        assert "LockHeldError" in other.stderr
    assert not lock.held
    with run_dir_lock(tmp_path):  # a run directory's lock: a RunDirectoryError (exit status 2 in the CLI)
        code = f"from physamp.training import run_dir_lock; run_dir_lock({str(tmp_path)!r}).acquire()"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert "RunDirectoryError: run directory" in other.stderr and f"pid {os.getpid()}" in other.stderr


def test_release_frees_the_lock_while_a_forked_child_still_shares_its_descriptor(tmp_path):
    # DataLoader workers are forked with the run directory's lock descriptor open; when the
    # loop gives the lock back, a second run in this process must get it at once
    lock = FileLock(tmp_path / "x.lock").acquire()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child keeps the inherited descriptor open until told to exit
        os.close(write)
        os.read(read, 1)
        os._exit(0)
    os.close(read)
    try:
        lock.release()
        code = f"from physamp.training import FileLock; FileLock({str(tmp_path / 'x.lock')!r}).acquire()"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode == 0, other.stderr
    finally:
        os.write(write, b"x")
        os.close(write)
        os.waitpid(pid, 0)


def test_a_forked_child_releasing_its_copy_does_not_unlock_the_parent(tmp_path):
    lock = FileLock(tmp_path / "x.lock").acquire()
    try:
        pid = os.fork()
        if pid == 0:
            lock.release()  # e.g. a worker process whose copy of the lock object is collected
            os._exit(0)
        os.waitpid(pid, 0)
        code = f"from physamp.training import FileLock; FileLock({str(tmp_path / 'x.lock')!r}).acquire()"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert other.returncode != 0 and "is in use by" in other.stderr
    finally:
        lock.release()


def test_a_cell_computed_by_another_sweep_is_waited_for_then_read_from_the_cache(tmp_path, capsys):
    calls = []

    def fn(cell):  # runs in this process (workers=1)
        calls.append(cell["x"])
        return {"nll": float(cell["x"])}

    cache = tmp_path / "cache"
    busy = {"x": 1}
    # "another sweep" (another process: the lock is per process) computes cell x=1 and finishes it later
    code = textwrap.dedent(
        f"""
        import pathlib, time
        from physamp.training import FileLock
        from physamp.experiments.sweep import _store
        lock = FileLock({str(cache / (cell_key(busy) + ".lock"))!r}).acquire()
        print("held", flush=True)
        time.sleep(2.0)
        _store(pathlib.Path({str(cache)!r}), {busy!r}, {{"nll": 100.0, "seconds": 1.0}})
        lock.release()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    out = run_sweep(fn, [{"x": 0}, busy, {"x": 2}], cache, workers=1, progress=False, required=("nll",))
    proc.wait()
    assert [r["nll"] for r in out] == [0.0, 100.0, 2.0]
    assert calls == [0, 2]  # x=1 was computed once, by the other sweep
    assert f"cell {cell_key(busy)} is being computed by pid {proc.pid}" in capsys.readouterr().err


# --- reruns and `physamp sample` -----------------------------------------------------------------------
def test_a_finished_run_is_not_evaluated_again(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main([*TINY, "--run-dir", str(run)]) == 0
    first = capsys.readouterr().out
    stored = json.loads((run / "result.json").read_text())
    assert stored["ais"] == {"runs": 2, "betas": 10, "seed": 0, "max_train": None, "max_test": None}
    assert stored["config"] == json.loads((run / "config.json").read_text())

    import physamp.models.rbm.evaluate as evaluate

    real = evaluate.evaluate_nll
    calls = []
    monkeypatch.setattr(evaluate, "evaluate_nll", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert main([*TINY, "--run-dir", str(run)]) == 0
    again = capsys.readouterr().out
    assert calls == []  # no AIS
    assert "stored result" in again
    line = next(x for x in first.splitlines() if x.startswith("test NLL:"))
    assert line in again.splitlines()  # the same numbers, printed the same way
    # other AIS settings evaluate the trained model again (without training it again)
    before = load_checkpoint(run / "checkpoint.pt")["state:model"]["W"]
    assert main([*TINY, "--ais-betas", "12", "--run-dir", str(run)]) == 0
    assert calls == [1] and "stored result" not in capsys.readouterr().out
    assert torch.equal(load_checkpoint(run / "checkpoint.pt")["state:model"]["W"], before)
    assert json.loads((run / "result.json").read_text())["ais"]["betas"] == 12


def test_train_and_evaluate_reuses_the_stored_result(tmp_path):
    from physamp.data import load_dataset

    data = load_dataset("mnist-bundled")
    cfg = RBMTrainConfig(n_hidden=4, epochs=1, k=1)
    kw = dict(run_dir=tmp_path / "r", ais_runs=2, ais_betas=10, progress=False, max_train=200, max_test=50)
    first = train_and_evaluate(cfg, data, **kw)
    second = train_and_evaluate(cfg, data, **kw)
    assert not first.reused and second.reused
    assert second.test_nll == first.test_nll and second.log_z.log_z == first.log_z.log_z
    assert torch.equal(second.rbm.W, first.rbm.W)
    third = train_and_evaluate(cfg, data, **{**kw, "ais_seed": 5})  # another AIS seed: evaluated again
    assert not third.reused and third.ais["seed"] == 5


def test_sample_writes_beside_its_checkpoint_with_the_whole_title(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert main([*TINY, "--run-dir", str(run)]) == 0
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    titles = []
    import physamp.plotting as plotting

    real = plotting.save_image_grid
    monkeypatch.setattr(
        plotting,
        "save_image_grid",
        lambda *a, title=None, **k: titles.append(title) or real(*a, title=title, **k),
    )
    argv = ["sample", str(run / "checkpoint.pt"), "--sampler", "simulated", "-o", "steps=3"]
    assert main([*argv, "-o", "weight_noise=0.1", "--num", "8"]) == 0
    assert (run / "samples-simulated.png").stat().st_size > 1000
    assert list(elsewhere.iterdir()) == []  # nothing in the working directory
    assert (run / "samples.png").exists()  # train-rbm's own figure is left alone
    (title,) = titles
    assert title.replace("\n", " ").endswith("deterministic=False)")  # the whole repr, wrapped, not cut
    assert max(len(line) for line in title.splitlines()) <= 64
    assert f"written to {run / 'samples-simulated.png'}" in capsys.readouterr().out
