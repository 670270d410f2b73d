"""The command line's error boundary (bso_deploy/cli.py, bso_deploy/crash_log.py, docs/errors.md): an expected
failure is one line on stderr and exit code 2; any other exception is one line naming a crash log that holds
the traceback, exit code 3; Ctrl-C is 130. Never a bare traceback, in process and through the real command."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from bso_deploy import cli
from bso_deploy.crash_log import LOG_DIR_VARIABLE, log_directories, one_line, write_crash_log
from bso_deploy.errors import InvalidFileError, InvalidInputError, MissingFileError, RangeError, RunLockedError
from bso_deploy.extras import MissingExtraError

COMMAND = Path(sys.executable).with_name("bso-deploy")
INTERNAL = re.compile(r"^bso-deploy run: internal error \((?P<type>\w+): (?P<message>.*)\); please report it with "
                      r"the log (?P<path>/\S+\.log)$")

EXPECTED = [
    InvalidFileError("model.nir: not an HDF5 file\n(truncated?)"),
    InvalidInputError("inputs contain NaN"),
    RangeError("inputs must lie in [0, 1], got values in [-1, 3]"),
    RunLockedError("runs/x is locked by pid 12"),
    MissingFileError("no checkpoint in runs/x"),
    ValueError("plain ValueError"),
    FileNotFoundError(2, "No such file or directory", "x.npy"),
    PermissionError(13, "Permission denied", "/root/x"),
    IsADirectoryError(21, "Is a directory", "runs"),
    FloatingPointError("overflow encountered"),
    MissingExtraError("the digits data set", "scikit-learn", "digits"),
]
UNEXPECTED = [RuntimeError("h5py: corrupt B-tree"), RecursionError("maximum recursion depth exceeded"),
              MemoryError("Unable to allocate 256. GiB"), KeyError("bits"), AttributeError("'Dataset' has no 'items'"),
              TypeError("unsupported operand"), IndexError("list index out of range"), ImportError("no module x"),
              AssertionError()]


def raising(error: BaseException):
    def command(args) -> int:
        raise error
    return command


def run_main(monkeypatch, capsys, error: BaseException) -> tuple[int, list[str]]:
    """main() on a real `run` command line whose implementation raises ``error``; (exit code, stderr lines)."""
    monkeypatch.setattr(cli, "resolve_command", lambda name: raising(error))
    code = cli.main(["run", "model.nir", "--backend", "sim", "--inputs", "x.npy", "--out", "o.npz"])
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err.splitlines()


@pytest.mark.parametrize("error", EXPECTED, ids=lambda error: type(error).__name__)
def test_an_expected_failure_is_one_line_and_exit_code_2(monkeypatch, capsys, tmp_path, error):
    monkeypatch.setenv(LOG_DIR_VARIABLE, str(tmp_path / "logs"))
    code, lines = run_main(monkeypatch, capsys, error)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0] == f"bso-deploy run: error: {one_line(str(error), limit=10_000)}"
    assert "\n" not in lines[0] and "Traceback" not in lines[0] and lines[0].strip() != "bso-deploy run: error:"
    assert not (tmp_path / "logs").exists()  # no crash log for an expected failure


@pytest.mark.parametrize("error", UNEXPECTED, ids=lambda error: type(error).__name__)
def test_an_unexpected_exception_is_one_line_naming_a_log_with_the_traceback(monkeypatch, capsys, tmp_path, error):
    monkeypatch.setenv(LOG_DIR_VARIABLE, str(tmp_path / "logs"))
    code, lines = run_main(monkeypatch, capsys, error)
    assert code == 3 and len(lines) == 1, lines
    match = INTERNAL.match(lines[0])
    assert match and match["type"] == type(error).__name__, lines[0]
    log = Path(match["path"])
    assert log.parent == tmp_path / "logs" and [p.name for p in log.parent.iterdir()] == [log.name]
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in command" in text and "raise error" in text
    assert "arguments: ['run', 'model.nir'" in text and type(error).__name__ in text


def test_the_summary_of_a_long_multiline_message_stays_one_short_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(LOG_DIR_VARIABLE, str(tmp_path))
    code, lines = run_main(monkeypatch, capsys, RuntimeError("first\n\n  second\n" + "x" * 5000))
    assert code == 3 and len(lines) == 1 and "(RuntimeError: first second xxx" in lines[0]
    assert len(lines[0]) < 500 and "x" * 5000 in Path(INTERNAL.match(lines[0])["path"]).read_text()


def test_an_exception_whose_str_fails_is_still_reported(monkeypatch, capsys, tmp_path):
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no str")

    monkeypatch.setenv(LOG_DIR_VARIABLE, str(tmp_path))
    code, lines = run_main(monkeypatch, capsys, Unprintable())
    assert code == 3 and len(lines) == 1 and "internal error (Unprintable:" in lines[0]


def test_ctrl_c_is_exit_code_130_with_one_line(monkeypatch, capsys):
    code, lines = run_main(monkeypatch, capsys, KeyboardInterrupt())
    assert code == 130 and lines == ["bso-deploy run: interrupted"]


def test_log_directory_precedence():
    home, temp = Path.home(), Path(tempfile.gettempdir())
    assert log_directories({}) == [home / ".local/state/bso-deploy", temp / "bso-deploy"]
    assert log_directories({"XDG_STATE_HOME": "/x/state"}) == [Path("/x/state/bso-deploy"), temp / "bso-deploy"]
    both = {"XDG_STATE_HOME": "/x/state", LOG_DIR_VARIABLE: "/y/logs"}
    assert log_directories(both) == [Path("/y/logs"), temp / "bso-deploy"]
    assert log_directories({LOG_DIR_VARIABLE: "", "XDG_STATE_HOME": ""})[0] == home / ".local/state/bso-deploy"


def test_an_unwritable_log_directory_falls_back_to_the_temp_dir(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "temp"))
    try:
        raise ValueError("boom")
    except ValueError as raised:
        error = raised
    path = write_crash_log("run", ["run"], error, environ={LOG_DIR_VARIABLE: str(blocker / "logs")})
    assert path is not None and path.parent == tmp_path / "temp" / "bso-deploy" and "boom" in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left beside it
    monkeypatch.setattr(tempfile, "tempdir", str(blocker))  # the temp dir is not writable either
    assert write_crash_log("run", ["run"], error, environ={LOG_DIR_VARIABLE: str(blocker / "logs")}) is None


def command(args: list[str], env: dict[str, str], cwd: Path, code: str | None = None) -> subprocess.CompletedProcess:
    argv = [str(COMMAND), *args] if code is None else [sys.executable, "-c", code, *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


@pytest.fixture
def environment(tmp_path) -> dict[str, str]:
    return {**os.environ, LOG_DIR_VARIABLE: str(tmp_path / "logs")}


BAD_INPUT = [["run", "missing.nir", "--backend", "sim", "--inputs", "x.npy", "--out", "o.npz"],
             ["run", "model.nir", "--backend", "sim", "--inputs", "x.npy", "--out", "o.npz"],
             ["export", "missing/checkpoint.pt", "--out", "m.nir"],
             ["train", "--resume", "--out", "no-such-run"],
             ["run", "model.nir", "--backend", "gpu", "--inputs", "x.npy", "--out", "o.npz"]]
# Through the installed console script: a file the readers refuse (h5py's first import included) and an
# argparse error; every case in process below.
REAL_COMMAND_CASES = (1, 4)


def bad_input_files(directory: Path) -> None:
    (directory / "model.nir").write_bytes(os.urandom(256))  # not an HDF5 file
    np.save(directory / "x.npy", np.zeros((2, 4), dtype=np.float32))


def assert_one_line_error(args: list[str], code: int, stderr: str) -> None:
    lines = stderr.splitlines()
    assert code == 2 and len(lines) == 1, (args, stderr)
    assert lines[0].startswith(f"bso-deploy {args[0]}: error: ") and "Traceback" not in stderr, lines


@pytest.mark.parametrize("args", BAD_INPUT, ids=lambda args: "-".join(args[:2]))
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, monkeypatch, capsys, args):
    bad_input_files(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(LOG_DIR_VARIABLE, str(tmp_path / "logs"))
    code = cli.main(list(args))
    captured = capsys.readouterr()
    assert_one_line_error(args, code, captured.err)
    assert not (tmp_path / "logs").exists()


def test_the_real_command_reports_bad_input_in_one_line(tmp_path, environment):
    bad_input_files(tmp_path)
    for args in (BAD_INPUT[index] for index in REAL_COMMAND_CASES):
        result = command(args, environment, tmp_path)
        assert_one_line_error(args, result.returncode, result.stderr)
    assert not (tmp_path / "logs").exists()


def test_the_real_command_logs_an_internal_error(tmp_path, environment):
    # A fresh interpreter runs the installed entry point with the `run` implementation replaced by one that
    # fails as a bug would (a KeyError deep inside): what the user sees is the boundary's line, never more.
    code = ("import sys; from bso_deploy import cli; "
            "cli.resolve_command = lambda name: (lambda args: {}['bits']); sys.exit(cli.main())")
    result = command(["run", "m.nir", "--backend", "sim", "--inputs", "x.npy", "--out", "o.npz"], environment,
                     tmp_path, code=code)
    lines = result.stderr.splitlines()
    assert result.returncode == 3 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    match = INTERNAL.match(lines[0])
    assert match and match["type"] == "KeyError" and match["message"] == "'bits'"
    log = Path(match["path"])
    assert log.parent == tmp_path / "logs" and "KeyError: 'bits'" in log.read_text()


def test_sigterm_is_exit_code_143_after_cleanup_and_the_handler_is_restored(tmp_path, environment):
    # A real SIGTERM to a real process: the command's `finally` runs (it prints), then one line and 143.
    code = ("import sys, time; from bso_deploy import cli\n"
            "def command(args):\n"
            "    try:\n        print('running', flush=True); time.sleep(120)\n"
            "    finally:\n        print('cleaned up', flush=True)\n"
            "cli.resolve_command = lambda name: command\nsys.exit(cli.main())")
    process = subprocess.Popen([sys.executable, "-c", code, "run", "m.nir", "--backend", "sim", "--inputs", "x.npy",
                                "--out", "o.npz"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=environment, cwd=tmp_path)
    assert process.stdout.readline().strip() == "running"
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and stdout.strip() == "cleaned up"
    assert stderr.splitlines() == ["bso-deploy run: terminated (SIGTERM)"]


def test_main_leaves_the_sigterm_handler_as_it_found_it(monkeypatch, capsys):
    before = signal.getsignal(signal.SIGTERM)
    code, lines = run_main(monkeypatch, capsys, cli.Terminated("signal SIGTERM"))
    assert code == 143 and lines == ["bso-deploy run: terminated (SIGTERM)"]
    assert signal.getsignal(signal.SIGTERM) is before
