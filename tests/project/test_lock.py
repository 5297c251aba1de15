"""The dependency locks agree with pyproject.toml, and the installs use them.

requirements/runtime.txt (project.dependencies) and requirements/dev.txt (those plus the `dev`
extra) are made by scripts/lock. These tests read files only: no network, no install. When one
fails after pyproject.toml changed, run scripts/lock (then scripts/bootstrap) and commit both.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
RUNTIME = REPO / "requirements" / "runtime.txt"
DEV = REPO / "requirements" / "dev.txt"
BUILD = REPO / "requirements" / "build.txt"
PROJECT = "jwt-custom-auth"
# how uv names pyproject.toml itself in a pin's "# via" list
ROOT_ANNOTATION = re.compile(r"^jwt-custom-auth(\[[^\]]*\])? \(pyproject\.toml\)$")
# the locks are for CPython 3.11 on Linux (scripts/lock's --python-version/--python-platform)
TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.7",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
    "platform_machine": "x86_64",
}


@dataclass
class Pin:
    requirement: Requirement
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)

    @property
    def name(self) -> NormalizedName:
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> Version:
        (spec,) = self.requirement.specifier
        return Version(spec.version)


def read_lock(path: Path) -> dict[NormalizedName, Pin]:
    """The pins of a lock as uv pip compile writes it: requirement, hashes, "# via" lines."""
    pins: dict[NormalizedName, Pin] = {}
    last: Pin | None = None
    in_via = False
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        where = f"{path.name}:{number}"
        if not line:
            continue
        if not raw[0].isspace():
            assert not line.startswith("-"), f"{where}: an option or an editable install: {line}"
            in_via = False
            if line.startswith("#"):
                last = None  # the header
                continue
            last = Pin(Requirement(line.removesuffix("\\").strip()))
            assert last.name not in pins, f"{where}: {last.name} is pinned twice"
            pins[last.name] = last
            continue
        assert last is not None, f"{where}: an indented line outside a pin: {line}"
        if line.startswith("--hash="):
            last.hashes.append(line.removeprefix("--hash=").removesuffix("\\").strip())
        elif line == "# via":
            in_via = True
        elif line.startswith("# via "):
            last.via.append(line.removeprefix("# via ").strip())
            in_via = False
        elif in_via and line.startswith("#   "):
            last.via.append(line.removeprefix("#   ").strip())
        else:
            raise AssertionError(f"{where}: a line this test does not know: {line}")
    return pins


def pyproject_requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(text) for text in project["dependencies"]]
    for extra in extras:
        requirements += [Requirement(text) for text in project["optional-dependencies"][extra]]
    return [r for r in requirements if r.marker is None or r.marker.evaluate(TARGET)]


LOCKS = {
    "runtime": (RUNTIME, ()),
    "dev": (DEV, ("dev",)),
}
# a lock's name, its pins, and the requirements of pyproject.toml it is for
Lock = tuple[str, dict[NormalizedName, Pin], list[Requirement]]


@pytest.fixture(scope="module", params=sorted(LOCKS))
def lock(request: pytest.FixtureRequest) -> Lock:
    path, extras = LOCKS[request.param]
    return request.param, read_lock(path), pyproject_requirements(*extras)


def test_every_pin_is_one_exact_version_with_hashes(lock: Lock) -> None:
    name, pins, _ = lock
    assert pins, f"the {name} lock pins nothing"
    for pin in pins.values():
        specs = list(pin.requirement.specifier)
        assert len(specs) == 1, f"{name}: {pin.requirement} is not one pinned version"
        assert specs[0].operator == "==", f"{name}: {pin.requirement} is not pinned with =="
        assert "*" not in specs[0].version, f"{name}: {pin.requirement} is a wildcard"
        assert pin.requirement.url is None, f"{name}: {pin.requirement} installs from a URL"
        assert pin.hashes, f"{name}: {pin.name} has no hash (pip --require-hashes refuses it)"
        for digest in pin.hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{name}: {pin.name}: {digest}"
    # the project is installed after the lock, with --no-deps
    assert PROJECT not in pins, f"the {name} lock pins the project itself"


def test_lock_satisfies_every_requirement_of_pyproject(lock: Lock) -> None:
    name, pins, requirements = lock
    problems = []
    for requirement in requirements:
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{requirement} is not met by the locked {pin.version}")
    assert not problems, f"pyproject.toml and the {name} lock disagree (run scripts/lock): " + (
        "; ".join(problems)
    )


def test_lock_has_nothing_pyproject_no_longer_needs(lock: Lock) -> None:
    """Every pin is a requirement of pyproject.toml or, by its "# via", needed by such a pin."""
    name, pins, requirements = lock
    needed = {canonicalize_name(r.name) for r in requirements} & pins.keys()
    grew = True
    while grew:
        grew = False
        for pin in pins.values():
            if pin.name in needed:
                continue
            parents = {canonicalize_name(v.split()[0]) for v in pin.via
                       if not v.startswith("-") and not ROOT_ANNOTATION.match(v)}
            if parents & needed:
                needed.add(pin.name)
                grew = True
    stale = sorted(pins.keys() - needed)
    assert not stale, f"the {name} lock pins what nothing requires (run scripts/lock): {stale}"


def test_image_and_venv_get_the_same_runtime_versions() -> None:
    runtime, dev = read_lock(RUNTIME), read_lock(DEV)
    for pin in runtime.values():
        assert pin.name in dev, f"{pin.name} is in the runtime lock but not in the dev lock"
        assert dev[pin.name].version == pin.version, (
            f"{pin.name}: runtime {pin.version}, dev {dev[pin.name].version} (run scripts/lock)"
        )
        assert set(dev[pin.name].hashes) == set(pin.hashes), f"{pin.name}: other hashes"


def test_installs_use_the_locks() -> None:
    """No engine builds the image here: read that the Dockerfile and the bootstrap use the locks."""
    dockerfile = " ".join((REPO / "Dockerfile").read_text().replace("\\\n", " ").split())
    assert "COPY requirements/runtime.txt requirements/build.txt " in dockerfile
    assert re.search(r"pip install [^&]*--require-hashes -r \S*runtime\.txt", dockerfile)
    assert re.search(r"pip install [^&]*--require-hashes -r \S*build\.txt", dockerfile)
    assert re.search(r"pip install [^&]*--no-deps --no-build-isolation /src", dockerfile)
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert "!requirements/runtime.txt" in ignored
    assert "!requirements/build.txt" in ignored
    bootstrap = (REPO / "scripts" / "bootstrap").read_text()
    assert "--require-hashes -r requirements/dev.txt" in bootstrap
    assert "--require-hashes -r requirements/build.txt" in bootstrap
    assert "--no-deps --no-build-isolation -e ." in bootstrap


def test_the_build_backend_is_locked_too() -> None:
    build = read_lock(BUILD)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for text in requires:
        requirement = Requirement(text)
        pin = build.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement.name} is not in {BUILD.name}: run scripts/lock"
        assert requirement.specifier.contains(pin.version), f"{pin.name} {pin.version}"
        assert pin.hashes, f"{pin.name} has no hashes"
