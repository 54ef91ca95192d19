"""``[store]`` (config/store.py): the backend, its URL and password file, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from todoku.config.load import ConfigError, config_from_dict

BASE = {"hostname": "mx.example.test", "domains": ["example.test"]}
URL = "postgresql://todoku@db.internal/todoku?sslmode=verify-full"


def store(tmp_path: Path, **table: object) -> object:
    return config_from_dict({**BASE, "store": table}, tmp_path).store


def test_the_default_is_the_embedded_store(tmp_path: Path) -> None:
    config = config_from_dict(dict(BASE), tmp_path)
    assert (config.store.backend, config.store.blobs, config.store.url) == ("sqlite", "files", None)


def test_postgresql_with_its_defaults(tmp_path: Path) -> None:
    s = store(tmp_path, backend="postgresql", url=URL)
    assert (s.backend, s.url, s.blobs, s.lease, s.pool_size, s.timeout) == (  # type: ignore[attr-defined]
        "postgresql",
        URL,
        "postgresql",
        300.0,
        16,
        10.0,
    )


def test_the_password_comes_from_its_file(tmp_path: Path) -> None:
    (tmp_path / "db-password").write_text("s3cret\n")
    s = store(tmp_path, backend="postgresql", url=URL, password_file="db-password")
    assert s.read_password() == "s3cret"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ({"backend": "mysql"}, 'store.backend: must be "sqlite" or "postgresql", got \'mysql\''),
        ({"backend": "postgresql"}, "store.url: missing"),
        ({"url": URL}, 'store.url: only with backend = "postgresql"'),
        ({"blobs": "postgresql"}, 'store.blobs: with backend = "sqlite" message content is'),
        ({"backend": "postgresql", "url": "mysql://x/y"}, 'store.url: expected a "postgresql://'),
        (
            {"backend": "postgresql", "url": URL, "blobs": "files"},
            'store.blobs: with backend = "postgresql" message content is kept in PostgreSQL',
        ),
        (
            {"backend": "postgresql", "url": URL, "password_file": "missing"},
            "store.password_file: no such file",
        ),
        ({"backend": "postgresql", "url": URL, "lease": "1s"}, "store.lease: at least 10s"),
        ({"backend": "postgresql", "url": URL, "pool_size": 1}, "store.pool_size: expected"),
        ({"backend": "postgresql", "url": URL, "colour": "red"}, "store.colour: unknown key"),
    ],
)
def test_mistakes_are_one_line_naming_the_key(
    tmp_path: Path, table: dict[str, object], error: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        store(tmp_path, **table)
    assert str(caught.value).startswith(error)
    assert "\n" not in str(caught.value)


def test_a_password_in_the_url_is_never_repeated_in_an_error(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x")
    with pytest.raises(ConfigError) as caught:
        store(
            tmp_path,
            backend="postgresql",
            url="postgresql://todoku:hunter2@db/todoku",
            password_file="pw",
        )
    assert "password already" in str(caught.value) and "hunter2" not in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        store(tmp_path, backend="postgresql", url="mysql://todoku:hunter2@db/todoku")
    assert "hunter2" not in str(caught.value)
