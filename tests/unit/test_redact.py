"""Secrets never reach logs or error messages: URL passwords (QDRANT_URL), bearer tokens, API keys."""

from __future__ import annotations

import io
import json
import logging

import pytest

from embcluster.logs import configure_logging
from embcluster.redact import redact, redact_url

SECRET = "hunter2-secret"
KEY = "emb_" + "k" * 43


@pytest.mark.parametrize("text", [
    f"http://admin:{SECRET}@qdrant:6333",
    f"cannot reach https://u:{SECRET}@db.example:6334/x (gRPC)",
    f"https://db.example:6333/?api_key={SECRET}&x=1",
    f"authorization: Bearer {SECRET}",
    f"metadata [('authorization', 'Bearer {SECRET}')]",
    f'{{"api_key": "{SECRET}"}}',
    f"password={SECRET}",
])
def test_redact_masks_every_form(text: str) -> None:
    assert SECRET not in redact(text)
    assert "***" in redact(text)


def test_redact_url_keeps_what_helps_and_masks_the_password() -> None:
    assert redact_url(f"http://admin:{SECRET}@qdrant:6333/p") == "http://admin:***@qdrant:6333/p"
    assert redact_url(f"http://{SECRET}@qdrant:6333") == "http://***@qdrant:6333"
    assert redact_url("http://qdrant:6333") == "http://qdrant:6333"
    assert redact(f"key {KEY} used") == "key emb_*** used"
    assert redact("nothing secret in collection 'a'") == "nothing secret in collection 'a'"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_log_lines_never_carry_a_secret(fmt: str) -> None:
    stream = io.StringIO()
    handler = configure_logging("INFO", fmt, stream=stream)  # type: ignore[arg-type]
    try:
        log = logging.getLogger("embcluster.test_redact")
        log.warning("connecting to %s", f"http://u:{SECRET}@qdrant:6333")
        log.info("header was Bearer %s and key %s", SECRET, KEY)
        try:
            raise RuntimeError(f"failed at http://u:{SECRET}@host")
        except RuntimeError:
            log.exception("store error")
    finally:
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue()
    assert SECRET not in out and KEY not in out
    assert out.count("***") >= 4
    if fmt == "json":
        assert all(json.loads(line) for line in out.splitlines())


def test_serve_does_not_print_the_qdrant_url_password(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from embcluster.cli import main

    code = main(["serve", "--port", "0", "--data-dir", str(tmp_path / "d"), "--lazy-model", "--no-metrics",
                 "--store", "qdrant", "--qdrant-url", f"http://admin:{SECRET}@127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot reach the Qdrant server at http://admin:***@127.0.0.1:1" in err
    assert SECRET not in err
