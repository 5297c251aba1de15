"""The client as a distribution: its version, its README, and its wheel installed alone.

The wheel is built from a copy of clients/python (the build writes nothing into the checkout)
without fetching anything (--no-isolation: the locked setuptools of .venv), and installed with
--no-index --no-deps into a virtual environment of its own: what it imports there, it carries.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import jwt_auth_client
from tests.client.apps import EXAMPLES
from tests.client.clientnet import Verifier
from tests.forge import fresh
from tests.keypairs import KeyPair
from tests.procs import REPO

CLIENT = REPO / "clients" / "python"


def project() -> dict[str, object]:
    table: dict[str, object] = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    return table


def test_the_version_is_one_in_pyproject_the_package_and_the_changelog() -> None:
    version = project()["version"]
    assert jwt_auth_client.__version__ == version == "0.2.0"
    changelog = (CLIENT / "CHANGELOG.md").read_text()
    assert changelog.split("\n## ", 2)[1].startswith(f"{version}\n")


def test_the_readme_shows_the_example_files_as_they_are() -> None:
    readme = (CLIENT / "README.md").read_text()
    for example in sorted(EXAMPLES.glob("*.py")):
        code = example.read_text().rstrip()
        assert f"```python\n{code}\n```" in readme, example.name


def run(command: list[str | Path], *, cwd: Path | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """A command that must succeed, with its output in the failure when it does not."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                            cwd=cwd, env=env)
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
@pytest.mark.e2e
def test_the_wheel_installs_and_runs_alone_in_a_clean_venv(
        tmp_path: Path, verifier: Verifier, key_pair: KeyPair) -> None:
    source = tmp_path / "source"
    shutil.copytree(CLIENT, source, ignore=shutil.ignore_patterns(
        "*.egg-info", "build", "dist", "__pycache__"))
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
         "--outdir", tmp_path / "dist", source])
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name == f"jwt_auth_client-{jwt_auth_client.__version__}-py3-none-any.whl"

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    # no pip configuration of the machine's or the user's: nothing may come from an index
    env = {name: value for name, value in os.environ.items() if not name.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    run([python, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", wheel], env=env)

    script = """
import importlib.metadata, importlib.util, json, sys
import jwt_auth_client
from jwt_auth_client import *  # the whole public namespace, without the async extra
from jwt_auth_client import VerifierClient
with VerifierClient(sys.argv[1], retries=0) as client:
    identity = client.identify(sys.argv[2])
try:
    from jwt_auth_client import AsyncVerifierClient
    async_clients = "importable"
except ModuleNotFoundError as error:
    async_clients = f"needs {error.name}"
print(json.dumps({
    "version": jwt_auth_client.__version__,
    "distribution": importlib.metadata.version("jwt-auth-client"),
    "requires": importlib.metadata.requires("jwt-auth-client"),
    "typed": importlib.util.find_spec("jwt_auth_client").submodule_search_locations[0],
    "user": identity.user_id,
    "async": async_clients,
    "from": jwt_auth_client.__file__,
}))
"""
    answer = json.loads(run([python, "-c", script, verifier.url, fresh(key_pair, "wheel")],
                            cwd=tmp_path, env=env).stdout)
    assert answer["version"] == answer["distribution"] == jwt_auth_client.__version__
    # the installed copy, not the checkout's
    assert answer["from"].startswith(str(venv))
    assert (Path(answer["typed"]) / "py.typed").is_file()
    # the sync client works with nothing but the standard library beside it
    assert answer["user"] == "wheel"
    # the async clients are an extra: without it, importing them names what is missing
    assert answer["async"] == "needs httpx"
    assert 'httpx>=0.27; extra == "async"' in answer["requires"]
