"""docker-compose.yml, checked with Debian's docker-compose (it parses without a Docker engine)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict:
    if shutil.which("docker-compose") is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing: .ci/run installs it")
        pytest.skip("Debian's docker-compose is not installed")
    d = tmp_path_factory.mktemp("compose")
    for name in ("docker-compose.yml", "Dockerfile"):
        shutil.copy(ROOT / name, d / name)
    (d / "ray-auth.env").write_text("RAY_AUTH_TOKEN=test-token\n")  # what the README has you make
    (d / "postgres-password.txt").write_text("test-password\n")
    (d / "pgpass").write_text("postgres:5432:studies:tuner:test-password\n")
    proc = subprocess.run(["docker-compose", "config"], cwd=d, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


def test_it_validates_with_a_head_and_gpu_workers(compose):
    services = compose["services"]
    assert set(services) == {"ray-head", "ray-worker", "postgres"}
    assert services["ray-head"]["command"].startswith("ray start --head --block")
    assert services["ray-worker"]["command"].startswith("ray start --address=ray-head:6379")
    devices = services["ray-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_every_published_port_is_bound_to_loopback(compose):
    published = [p for s in compose["services"].values() for p in s.get("ports", [])]
    assert published, "the dashboard and the client port are published"
    for port in published:
        host = port.split(":")[0] if isinstance(port, str) else port.get("host_ip")
        assert host == "127.0.0.1", port
    ports = {p.split(":")[1] for p in published}
    assert ports == {"8265", "10001"}  # dashboard and Ray client, nothing else


RAY_SERVICES = ("ray-head", "ray-worker")


def test_the_study_database_takes_its_password_from_files_and_publishes_nothing(compose):
    postgres = compose["services"]["postgres"]
    assert "ports" not in postgres  # reached on the compose network only
    env = postgres["environment"]
    assert env["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres-password"
    assert "POSTGRES_PASSWORD" not in env
    assert "test-password" not in (ROOT / "docker-compose.yml").read_text()
    for name in RAY_SERVICES:  # the driver's libpq reads the password from pgpass
        assert compose["services"][name]["environment"]["PGPASSFILE"] == "/run/secrets/pgpass"
    assert set(compose["secrets"]) == {"postgres-password", "pgpass"}


def test_services_run_the_projects_own_image_with_token_auth(compose):
    for name in RAY_SERVICES:
        service = compose["services"][name]
        assert service["image"] == "cnn-tuner:latest", name
        assert (Path(service["build"]["context"]) / "Dockerfile").is_file(), name  # built here
        assert service["environment"]["RAY_AUTH_MODE"] == "token", name
        assert service["environment"]["RAY_AUTH_TOKEN"] == "test-token", name  # from the env file
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'pip install --no-cache-dir ".[postgres]"' in dockerfile  # this project, with psycopg
    for package in ("tuner", "search_spaces", "analysis"):
        assert f"COPY {package} " in dockerfile


def test_head_and_workers_share_the_storage_volume(compose):
    assert "shared" in compose["volumes"]
    mounts = {
        name: {v.split(":")[0]: v.split(":")[1] for v in compose["services"][name]["volumes"]}
        for name in RAY_SERVICES
    }
    assert mounts["ray-head"]["shared"] == mounts["ray-worker"]["shared"] == "/shared"
    for name in RAY_SERVICES:
        assert compose["services"][name]["environment"]["TUNER_DATA_DIR"].startswith("/shared/")
