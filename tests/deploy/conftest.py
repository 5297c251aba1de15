"""Fixtures of the deploy tests: each overlay rendered once, with what it needs to render.

``rendered`` is every object of one overlay (the tests using it run once per overlay), from a
copy of deploy/kubernetes: the dev overlay's Secrets are generated from the files of
``jwt-auth dev-keys``, made in the copy as docs/kubernetes.md says, so a developer's own
dev-keys folder is neither needed nor read. ``dev_keys`` is where that copy keeps them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jwt_auth.devkeys import DevPaths, ensure_dev_keys
from tests.deploy.manifests import KUBERNETES_DIR, OVERLAYS, Obj, render


@pytest.fixture(scope="session")
def kubernetes_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/kubernetes, copied, with the dev keys made where the dev overlay reads them."""
    copy = tmp_path_factory.mktemp("deploy") / "kubernetes"
    shutil.copytree(KUBERNETES_DIR, copy,
                    ignore=shutil.ignore_patterns("dev-keys"))
    # 2048 bits: as good for wiring as 4096, and a fraction of the time to make
    ensure_dev_keys(DevPaths.under(copy / "overlays" / "dev" / "dev-keys"), bits=2048)
    return copy


@pytest.fixture(scope="session")
def dev_keys(kubernetes_copy: Path) -> DevPaths:
    return DevPaths.under(kubernetes_copy / "overlays" / "dev" / "dev-keys")


@pytest.fixture(scope="session")
def rendered_overlays(kubernetes_copy: Path) -> dict[str, list[Obj]]:
    return {overlay: render(kubernetes_copy / "overlays" / overlay) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def rendered(rendered_overlays: dict[str, list[Obj]], overlay: str) -> list[Obj]:
    return rendered_overlays[overlay]
