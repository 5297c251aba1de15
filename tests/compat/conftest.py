"""Seed-made keys, generated once per test session (4096-bit generation takes seconds)."""

from __future__ import annotations

import pytest

from tests.compat.seed import SeedKeys, make_seed_keys


@pytest.fixture(scope="session")
def seed_keys(tmp_path_factory: pytest.TempPathFactory) -> SeedKeys:
    """The seed's commands on OpenSSL 3: a PKCS#8 ``ENCRYPTED PRIVATE KEY``."""
    return make_seed_keys(tmp_path_factory.mktemp("seed-keys"))


@pytest.fixture(scope="session")
def seed_keys_traditional(tmp_path_factory: pytest.TempPathFactory) -> SeedKeys:
    """The same commands writing the older ``Proc-Type: 4,ENCRYPTED`` (DES-EDE3-CBC) form."""
    return make_seed_keys(tmp_path_factory.mktemp("seed-keys-traditional"), traditional=True)
