"""The Leap API token never leaks (issue 8: items 1 and 2, and "Done means").

A planted token is passed every way a user passes one -- as an option
(``make_sampler("dwave", token=...)``, ``physamp check-sampler dwave -o token=...``,
``physamp train-rbm --sampler dwave -o token=...``), in ``DWAVE_API_TOKEN`` and in an
Ocean config file -- and everything the code shows or writes is searched for it:
stdout, stderr, every log record (TRACE level included), exception messages and
tracebacks, reprs, and every file under the test's directory (run directory,
``config.json``, the checkpoint, metrics, results, Ocean's cache). Nothing reaches a
network: the real ``DWaveSampler`` is pointed at an unreachable local endpoint, or
replaced by a fake that behaves as a hostile one would (it logs the token and puts
it in its errors).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import dimod
import pytest
import torch

import physamp
from physamp import cli
from physamp.samplers import make_sampler
from physamp.samplers import redact as R
from physamp.samplers.dwave import DWaveBackend, DWaveConnectionError
from physamp.training.config import to_jsonable

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
ROOT = Path(__file__).resolve().parents[1]
TRACE = 5  # Ocean's TRACE level


def planted_token() -> str:
    """A fresh token in the Leap format: a prefix, a dash and 40 hex digits."""
    return "DEV-" + secrets.token_hex(20)


def ocean_config(path: Path, token: str | None = None, cache: Path | None = None) -> Path:
    """An Ocean config file that sends every request to an unreachable local endpoint, fails at
    once (no retries, 0.5 s timeout) and keeps Ocean's cache in ``cache`` (default: beside it).

    A file that holds a token is an input, not an output: put it in a ``secret-input`` folder,
    outside the folder searched for leaks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "[defaults]",
        "endpoint = http://127.0.0.1:9/sapi/v2/",
        "leap_api_endpoint = http://127.0.0.1:9/leap/api/",
        "metadata_api_endpoint = http://127.0.0.1:9/metadata/v1/",
        "http_retry_total = 0",
        "request_timeout = 0.5",
        f"cache_home = {cache or path.parent / 'ocean-cache'}",
    ]
    if token is not None:
        lines.append(f"token = {token}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """No token in the environment; Ocean's config is an offline one under ``tmp_path``."""
    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)
    monkeypatch.delenv("DWAVE_PROFILE", raising=False)
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(ocean_config(tmp_path / "dwave.conf")))
    return tmp_path


def assert_nowhere(token: str, texts=(), root: Path | None = None, records=()) -> None:
    """Neither the token nor its hex body is in any text, log record or file under ``root``."""
    body = token.split("-", 1)[-1]  # a Leap token's secret part, after its "DEV-" style prefix
    # a short tail is no secret: a random free-form token can end in "-NU", which any binary file holds
    needles = (token, body) if len(body) >= 16 else (token,)
    for text in texts:
        for needle in needles:
            assert needle not in str(text), f"the token leaked into: {str(text)[:300]}"
    for record in records:
        shown = f"{record.getMessage()} {record.args!r} {record.exc_text or ''} {record.stack_info or ''}"
        for needle in needles:
            assert needle not in shown, f"the token leaked into a log record of {record.name}"
    if root is not None:
        files = [p for p in root.rglob("*") if p.is_file()]
        for p in files:
            data = p.read_bytes()
            for needle in needles:
                assert needle.encode() not in data, f"the token leaked into the file {p}"


class HostileDWaveSampler:
    """Stands in for ``dwave.system.DWaveSampler``: logs its config (token included) at DEBUG and
    TRACE as Ocean does, then fails with the token in its error message."""

    built: list[dict] = []

    def __init__(self, **kwargs):
        type(self).built.append(kwargs)
        log = logging.getLogger("dwave.cloud.client.base")
        log.debug("Config loaded: %r", kwargs)
        log.log(TRACE, "token=%s", kwargs.get("token"))
        try:
            raise ConnectionError(f"401 for token {kwargs.get('token')}")
        except ConnectionError:
            log.debug("request failed", exc_info=True)
        raise ConnectionError(f"SAPI refused token {kwargs.get('token')!s} ({kwargs})")


def working_fake_qpu(n_visible: int, n_hidden: int, token: str):
    """A ``DWaveSampler`` replacement that checks it got the token, logs it (hostile), and is a
    structured sampler on the complete bipartite graph (random reads: fast, not a QPU)."""
    seen = []

    def build(**kwargs):
        assert kwargs.get("token") == token  # the option token reached DWaveSampler
        seen.append(sorted(kwargs))
        logging.getLogger("dwave.cloud.client.base").debug("Creating qpu.Client() with: %r", kwargs)
        nodes = list(range(n_visible + n_hidden))
        edges = [(i, n_visible + j) for i in range(n_visible) for j in range(n_hidden)]
        return dimod.StructureComposite(dimod.RandomSampler(), nodes, edges)

    return build, seen


# --- item 1: a token passed as an option --------------------------------------------------
def test_token_option_is_accepted_and_never_shown(offline, monkeypatch, capsys, caplog):
    import dwave.system

    caplog.set_level(1)
    token = planted_token()
    HostileDWaveSampler.built = []
    monkeypatch.setattr(dwave.system, "DWaveSampler", HostileDWaveSampler)
    backend = make_sampler("dwave", token=token, solver="Advantage_system4.1")
    shown = [repr(backend), str(backend), backend.properties, vars(backend), backend.state_dict()]
    assert "token=<redacted>" in repr(backend)  # accepted, and says so
    errors = []
    rbm = physamp.RBM(4, 4)
    for call in (lambda: backend.dry_run(rbm, 10), lambda: backend.sample(rbm, 10)):
        with pytest.raises(DWaveConnectionError) as err:
            call()
        assert err.value.__cause__ is None and err.value.__context__ is None
        errors += [str(err.value), repr(err.value), "".join(traceback.format_exception(err.value))]
    assert HostileDWaveSampler.built and all(kw["token"] == token for kw in HostileDWaveSampler.built)
    assert "<redacted>" in errors[0]
    out = capsys.readouterr()
    assert_nowhere(token, [*shown, *errors, out.out, out.err, caplog.text], offline, caplog.records)
    assert any(r.name.startswith("dwave") for r in caplog.records)  # the stand-in did log
    # the config a run would store, and the redaction of any text
    assert to_jsonable({"sampler_options": {"token": token}}) == {"sampler_options": {"token": "<redacted>"}}
    assert token not in R.redact(f"the token is {token[4:]}-less {token}")


def test_token_option_errors_are_clear_and_hold_no_token(offline):
    with pytest.raises(ValueError, match="read back from a stored config") as err:
        DWaveBackend(token="<redacted>")
    with pytest.raises(ValueError, match="non-empty string"):
        DWaveBackend(token="")
    token = planted_token()
    with pytest.raises(ValueError, match="a sampler was given") as err:
        DWaveBackend(dimod.StructureComposite(dimod.RandomSampler(), [0, 1], [(0, 1)]), token=token)
    assert token not in str(err.value)


def test_check_sampler_cli_with_a_token_option(offline, capsys, caplog):
    """``physamp check-sampler dwave -o token=...`` with the real DWaveSampler, offline."""
    caplog.set_level(1)
    token = planted_token()
    rc = cli.main(["check-sampler", "dwave", "-o", f"token={token}", "--samples", "50"])
    out = capsys.readouterr()
    assert rc == 2 and "error: could not build DWaveSampler" in out.err
    assert "token=<redacted>" in out.out
    assert any(r.name.startswith("dwave.cloud") for r in caplog.records)  # Ocean's client did log
    assert_nowhere(token, [out.out, out.err, caplog.text], offline, caplog.records)


def test_train_rbm_with_a_token_option_writes_no_token(offline, monkeypatch, capsys, caplog):
    """``physamp train-rbm --sampler dwave -o token=... --run-dir R``: first against a solver that
    fails (config.json is written before the failure), then against a working stand-in, which
    writes every file of a run; neither output nor any file holds the token."""
    import dwave.system

    caplog.set_level(logging.DEBUG)
    token = planted_token()
    run = offline / "run"
    argv = [
        "--threads", "1", "train-rbm", "--dataset", "mnist-bundled", "--sampler", "dwave",
        "-o", f"token={token}", "--run-dir", str(run), "--hidden", "2", "--epochs", "1",
        "--batch-size", "500", "--chains", "20", "--ais-runs", "2", "--ais-betas", "20",
        "--figure-steps", "2", "--no-progress",
    ]  # fmt: skip
    HostileDWaveSampler.built = []
    monkeypatch.setattr(dwave.system, "DWaveSampler", HostileDWaveSampler)
    assert cli.main(argv) == 2
    failed = capsys.readouterr()
    assert "error:" in failed.err and HostileDWaveSampler.built
    stored = json.loads((run / "config.json").read_text())
    assert stored["sampler_options"] == {"token": "<redacted>"}  # recorded, redacted

    build, seen = working_fake_qpu(784, 2, token)
    monkeypatch.setattr(dwave.system, "DWaveSampler", build)
    assert cli.main(argv) == 0
    done = capsys.readouterr()
    assert seen, "the stand-in QPU was never built"
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "checkpoint.pt", "metrics.jsonl", "result.json", "samples.png"} <= names
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["config"]["sampler_options"] == {"token": "<redacted>"}
    assert_nowhere(
        token, [failed.out, failed.err, done.out, done.err, caplog.text, repr(ckpt)], offline, caplog.records
    )


# --- the log hook ---------------------------------------------------------------------------
def test_log_hook_redacts_every_logger_and_tracebacks(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(tmp_path / "none.conf"))
    caplog.set_level(logging.DEBUG)
    token = planted_token()
    freeform = "freeform_" + secrets.token_urlsafe(12)  # no token shape: known because registered
    R.install_log_redaction()
    R.register_secret(freeform)
    log = logging.getLogger("urllib3.connectionpool")
    log.debug("headers %s", {"X-Auth-Token": token, "other": freeform})
    try:
        raise RuntimeError(f"refused {token}")
    except RuntimeError:
        logging.getLogger("some.app").exception("failed")
    assert_nowhere(token, [caplog.text], records=caplog.records)
    assert freeform not in caplog.text and caplog.text.count("<redacted>") >= 3


def test_config_token_is_read_once_without_logging(monkeypatch, tmp_path, caplog):
    """Reading the config file logs nothing (Ocean's load_config logs it, token included) and is
    cached by the file's modification time."""
    caplog.set_level(1)
    monkeypatch.delenv("DWAVE_API_TOKEN", raising=False)
    freeform = "cfg_" + secrets.token_urlsafe(16)
    conf = ocean_config(tmp_path / "secret-input" / "dwave.conf", token=freeform, cache=tmp_path / "cache")
    monkeypatch.setenv("DWAVE_CONFIG_FILE", str(conf))
    assert R.token_available() and R._config_token() == freeform
    assert not [r for r in caplog.records if r.name.startswith("dwave")]
    assert R.redact(f"x {freeform} y") == "x <redacted> y"
    other = "cfg_" + secrets.token_urlsafe(16)
    ocean_config(conf, token=other)
    os.utime(conf, ns=(os.stat(conf).st_atime_ns, os.stat(conf).st_mtime_ns + 10**9))
    assert R._config_token() == other  # a changed file is read again


# --- item 2: DWAVE_LOG_LEVEL=trace with the token in a config file ---------------------------
TRACE_SCRIPT = textwrap.dedent(
    """
    import logging, sys
    logging.basicConfig(level=1, stream=sys.stdout, format="ROOT %(name)s %(message)s")
    import physamp
    from physamp.samplers import make_sampler
    try:
        make_sampler("dwave").dry_run(physamp.RBM(4, 4), 10)
    except Exception as err:
        print("RAISED", type(err).__name__, err)
    """
)


@pytest.mark.parametrize("shape", ["leap", "freeform"])
def test_trace_logging_with_a_config_token_finishes_and_leaks_nothing(tmp_path, shape):
    """The issue's reproduction, in a fresh process: before, the redaction hook re-read the config,
    which logs, which called the hook (hundreds of thousands of lines a minute, never finishing),
    and the first records went out before the hook was installed."""
    token = planted_token() if shape == "leap" else "ff_" + secrets.token_urlsafe(20)
    written = tmp_path / "written"  # the process's working directory and Ocean's cache
    written.mkdir()
    conf = ocean_config(tmp_path / "secret-input" / "dwave.conf", token=token, cache=written / "cache")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DWAVE_")}
    env.update(DWAVE_CONFIG_FILE=str(conf), DWAVE_LOG_LEVEL="trace", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", TRACE_SCRIPT],
        env=env, cwd=written, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "RAISED DWaveConnectionError" in proc.stdout, out[-3000:]
    assert "TRACE" in proc.stderr and "ROOT dwave.cloud" in proc.stdout  # Ocean logged, at trace level
    assert out.count("\n") < 2000, f"{out.count(chr(10))} lines of log: a logging loop"
    assert "<redacted>" in proc.stdout
    assert_nowhere(token, [out], written)


# --- "Done means": no planted token in any file the test suite writes -------------------------
def test_no_token_in_files_the_suite_writes(tmp_path_factory):
    """Every test of this module plants its token under its own tmp_path; this one checks the
    session's whole temporary directory (every test that ran before it, in any module) for any
    Leap-shaped token at all, outside the config files that are a test's input."""
    base = tmp_path_factory.getbasetemp()
    leaks = []
    for p in base.rglob("*"):
        if "secret-input" in p.parts:
            continue
        if p.is_file() and p.stat().st_size < 50_000_000:
            text = p.read_bytes().decode("latin-1")
            found = R._TOKEN_PATTERN.findall(text)
            if found:
                leaks.append((str(p), found[:3]))
    assert leaks == []
