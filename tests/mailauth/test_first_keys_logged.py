"""Issue 16: the DKIM keys made at first start are logged in one line that names the command
printing their DNS records; a later start (keys already there) logs nothing about them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.conftest import write_config
from todoku.config import load_config
from todoku.mailauth.dkim import KeyStore
from todoku.mailauth.setup import prepare_dkim_keys


def test_first_keys_are_logged_once_with_the_command(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(write_config(tmp_path))
    with caplog.at_level(logging.INFO, logger="todoku.dkim"):
        prepare_dkim_keys(config)
    made = [r.getMessage() for r in caplog.records if r.name == "todoku.dkim"]
    selectors = ", ".join(KeyStore(config.data_dir).load("example.test").active.selectors)
    assert made == [
        (
            f"made DKIM keys for example.test, example.org (selectors {selectors}) in"
            f" {config.data_dir / 'dkim'}: publish them, run 'todoku dns-records' for the DNS records"
        )
    ]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="todoku.dkim"):
        prepare_dkim_keys(config)
    assert [r for r in caplog.records if r.name == "todoku.dkim"] == []
