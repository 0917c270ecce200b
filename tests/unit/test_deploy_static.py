"""Static checks that the Dockerfile, docker-compose.yml and deploy/ agree with the code.

No container engine runs on the development machines or in CI, so these files are kept
honest by reading them against the code itself:

- every GAPWATCH_* variable names a real setting, parses, and lands in that setting;
- images are pinned, and the gapwatch image tag is the project version;
- commands are real ``gapwatch`` sub-commands, parsed by the sub-command's own parser once
  its module exists;
- probes hit /healthz and /readyz on the port the container's settings make it listen on,
  and servers listen on all interfaces;
- ingest replicas never exceed the topic's partitions; `topics create` and `refdata check`
  succeed before the services that need them start;
- Prometheus scrapes every metrics port; every Deployment container has resources and
  probes; pods run as the image's non-root user; the kustomization lists every manifest;
- the API's token signing key comes from a Secret (k8s) or the host's environment
  (compose), never from a value in these files, and only the API gets it.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

ROOT = Path(__file__).resolve().parents[2]
try:
    import gapwatch  # noqa: F401
except ModuleNotFoundError:
    sys.path.insert(0, str(ROOT / "services"))

from gapwatch import cli  # noqa: E402
from gapwatch.settings import Settings  # noqa: E402
from tests.conftest import need  # noqa: E402

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE_FILE = ROOT / "docker-compose.yml"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus" / "prometheus.yml"
K8S_DIR = ROOT / "deploy" / "k8s"

# Sub-command -> the module that registers it (gapwatch.cli._COMMANDS; checked below).
COMMAND_MODULES = {
    "topics": "gapwatch.topics",
    "reconcile": "gapwatch.ingest.reconcile",
    "rebuild": "gapwatch.ingest.rebuild",
    "dlq": "gapwatch.ingest.dlq",
    "ingest": "gapwatch.ingest.command",
    "api": "gapwatch.api.command",
    "token": "gapwatch.api.token_command",
    "publish": "gapwatch.publisher.command",
    "refdata": "gapwatch.refdata.command",
    "spc": "gapwatch.spc_command",
    "alerter": "gapwatch.alerting.command",
}
SERVER_ROLES = ("api", "ingest")
HEALTH_PATHS = {"/healthz", "/readyz"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
COMPLETED = "service_completed_successfully"
# One-shot commands that must succeed before a role starts, and the roles that need them:
# the topics must exist (auto-creation is off), and `refdata check` must pass (ingest, api
# and publish all load the reference data at start-up).
GATE_ACTIONS = {"topics": "create", "refdata": "check"}
NEEDS = {"ingest": ("topics", "refdata"), "publish": ("topics", "refdata"), "api": ("refdata",)}
ALL_INTERFACES = {"0.0.0.0", "::"}  # noqa: S104 - containers must listen beyond loopback


# --- reading the files --------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        instr, _, rest = (buf + line).partition(" ")
        out.append((instr.upper(), rest.strip()))
        buf = ""
    return out


def dockerfile_stages() -> list[tuple[str, list[tuple[str, str]]]]:
    """(base image with ARG defaults substituted, instructions) per FROM."""
    args: dict[str, str] = {}
    stages: list[tuple[str, list[tuple[str, str]]]] = []
    for instr, rest in dockerfile_instructions():
        if instr == "ARG" and not stages and "=" in rest:
            name, _, value = rest.partition("=")
            args[name.strip()] = value.strip()
        elif instr == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), rest.split()[0])
            stages.append((image, []))
        elif stages:
            stages[-1][1].append((instr, rest))
    return stages


def runtime_stage() -> list[tuple[str, str]]:
    return dockerfile_stages()[-1][1]


def image_env() -> dict[str, str]:
    """ENV of the final stage: what every gapwatch container starts with."""
    env: dict[str, str] = {}
    for instr, rest in runtime_stage():
        if instr != "ENV":
            continue
        words = shlex.split(rest)
        if words and "=" not in words[0]:  # legacy `ENV NAME value`
            env[words[0]] = " ".join(words[1:])
        else:
            for word in words:
                name, _, value = word.partition("=")
                env[name] = value
    return env


@functools.cache
def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def k8s_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.iterdir() if p.suffix in {".yaml", ".yml"})


@functools.cache
def k8s_docs() -> list[tuple[str, dict[str, Any]]]:
    """Every manifest document (the kustomization excluded), with its file name."""
    docs = []
    for path in k8s_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") != "Kustomization":
                docs.append((path.name, doc))
    return docs


def k8s_of_kind(*kinds: str) -> list[tuple[str, dict[str, Any]]]:
    return [(f, d) for f, d in k8s_docs() if d["kind"] in kinds]


def pod_template(doc: dict[str, Any]) -> dict[str, Any]:
    spec = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: dict[str, Any] = spec["template"]
    return template


def configmaps() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d.get("data", {}) for _, d in k8s_of_kind("ConfigMap")}


# --- settings ------------------------------------------------------------------------------


def setting_paths() -> dict[str, tuple[str, ...]]:
    """GAPWATCH_* name -> attribute path, derived from Settings and its sections' fields."""
    paths: dict[str, tuple[str, ...]] = {}
    for name, info in Settings.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            for sub in ann.model_fields:
                paths[f"GAPWATCH_{name}_{sub}".upper()] = (name, sub)
        else:
            paths[f"GAPWATCH_{name}".upper()] = (name,)
    return paths


def field_annotation(path: tuple[str, ...]) -> Any:
    info = Settings.model_fields[path[0]]
    if len(path) == 2:
        info = info.annotation.model_fields[path[1]]  # type: ignore[union-attr]
    return info.annotation


def settings_for(env: dict[str, str | None], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as a container with exactly this environment would build them."""
    with monkeypatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("GAPWATCH_")]:
            mp.delenv(name)
        for name, value in env.items():
            if name.startswith("GAPWATCH_") and value is not None:
                mp.setenv(name, value)
        return Settings()


def listen_port(role: str, settings: Settings) -> int:
    return settings.api.port if role == "api" else settings.ingest.web_port


def listen_host(role: str, settings: Settings) -> str:
    return settings.api.host if role == "api" else settings.ingest.web_host


# Command-line flags that override where a server listens (``gapwatch api --port``, ...).
HOST_FLAG = {"api": "host"}
PORT_FLAG = {"api": "port", "ingest": "web_port"}


def serving(c: Container, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    """(host, port) a server container listens on: its settings, then its flags."""
    settings = settings_for(c.env, monkeypatch)
    _, ns = parse_command(c.args)
    host = getattr(ns, HOST_FLAG.get(c.role, ""), None)
    port = getattr(ns, PORT_FLAG.get(c.role, ""), None)
    return (
        listen_host(c.role, settings) if host is None else host,
        listen_port(c.role, settings) if port is None else port,
    )


# --- the gapwatch containers ---------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    where: str
    source: str  # "compose" or "k8s"
    owner: str  # the compose service, or the k8s workload's metadata.name
    kind: str  # "service", or the k8s workload kind
    image: str
    args: tuple[str, ...]
    declared: dict[str, str | None]  # GAPWATCH_* the file sets (None: from a Secret)
    env: dict[str, str | None]  # image ENV overlaid with the declared environment
    spec: dict[str, Any]  # the compose service or the k8s container
    init: bool = False

    @property
    def role(self) -> str:
        """The sub-command, read leniently; test_container_runs_a_real_... parses strictly."""
        rest = list(self.args)
        while rest and rest[0].startswith("-"):
            if rest.pop(0) == "--log-level" and rest:
                rest.pop(0)
        return rest[0] if rest else ""


def image_name(image: str) -> str:
    return image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]


def compose_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # ${NAME:-default} / ${NAME-default}: the default is what a bare `up` uses.
    return re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", str(value))


# ${NAME}, ${NAME:?message} or ${NAME?message} as the whole value: taken from the host's
# environment (or an untracked .env) when compose runs, like a k8s Secret reference.
HOST_ENV = re.compile(r"^\$\{(\w+)(?::?\?[^}]*)?\}$")


def compose_environment(service: dict[str, Any]) -> dict[str, str | None]:
    assert "env_file" not in service, "env_file hides settings from these checks"
    env = service.get("environment", {}) or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {
        k: None if v is None or HOST_ENV.match(str(v)) else compose_value(v) for k, v in env.items()
    }


def is_gapwatch_service(service: dict[str, Any]) -> bool:
    return "build" in service or image_name(service.get("image", "")) == "gapwatch"


def compose_containers() -> list[Container]:
    out = []
    for name, svc in load_compose()["services"].items():
        if not is_gapwatch_service(svc):
            continue
        command = svc.get("command", [])
        args = tuple(shlex.split(command) if isinstance(command, str) else map(str, command))
        declared = compose_environment(svc)
        env: dict[str, str | None] = {**image_env(), **declared}
        where = f"compose:{name}"
        image = svc.get("image", "")
        out.append(Container(where, "compose", name, "service", image, args, declared, env, svc))
    return out


def k8s_env(container: dict[str, Any]) -> dict[str, str | None]:
    maps = configmaps()
    env: dict[str, str | None] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            ref = source["configMapRef"]["name"]
            assert ref in maps, f"envFrom names ConfigMap {ref!r}, not in deploy/k8s"
            env.update({source.get("prefix", "") + k: str(v) for k, v in maps[ref].items()})
    for item in container.get("env", []):
        ref = item.get("valueFrom", {}).get("configMapKeyRef")
        if "value" in item:
            env[item["name"]] = str(item["value"])
        elif ref:
            env[item["name"]] = str(maps[ref["name"]][ref["key"]])
        else:
            env[item["name"]] = None
    return env


def k8s_containers() -> list[Container]:
    out = []
    for file, doc in k8s_of_kind(*WORKLOAD_KINDS):
        spec = pod_template(doc)["spec"]
        for init, key in ((True, "initContainers"), (False, "containers")):
            for c in spec.get(key, []):
                if image_name(c["image"]) != "gapwatch":
                    continue
                declared = k8s_env(c)
                owner = doc["metadata"]["name"]
                where = f"k8s:{file}:{owner}:{c['name']}"
                args = tuple(str(a) for a in c.get("args", []))
                env = {**image_env(), **declared}
                out.append(
                    Container(
                        where, "k8s", owner, doc["kind"], c["image"], args, declared, env, c, init
                    )
                )
    return out


CONTAINERS = compose_containers() + k8s_containers()


def by_id(containers: list[Container]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("container", containers, ids=[c.where for c in containers])


# --- the CLI -------------------------------------------------------------------------------


def cli_parser() -> tuple[argparse.ArgumentParser, set[str]]:
    """The gapwatch parser from the sub-command modules that exist; stubs for the rest."""
    parser = argparse.ArgumentParser(prog="gapwatch")
    parser.add_argument("--log-level")
    sub = parser.add_subparsers(dest="command", required=True)
    stubs = set()
    for name, module in COMMAND_MODULES.items():
        try:
            importlib.import_module(module).register(sub)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            sub.add_parser(name)
            stubs.add(name)
        assert name in sub.choices, f"{module} did not register the {name!r} sub-command"
    return parser, stubs


def parse_command(args: tuple[str, ...]) -> tuple[str, argparse.Namespace]:
    parser, stubs = cli_parser()
    try:
        ns, extra = parser.parse_known_args(list(args))
    except SystemExit:
        pytest.fail(f"`gapwatch {' '.join(args)}` is not a valid command line")
    if ns.command not in stubs:
        assert not extra, f"`gapwatch {' '.join(args)}`: unknown arguments {extra}"
    return ns.command, ns


# --- tests: settings -----------------------------------------------------------------------


def test_settings_use_the_env_naming_these_checks_assume() -> None:
    config = Settings.model_config
    assert config.get("env_prefix") == "GAPWATCH_"
    assert config.get("env_nested_delimiter") == "_"
    assert "GAPWATCH_KAFKA_BOOTSTRAP" in setting_paths()


def declared_gapwatch_names() -> list[tuple[str, str]]:
    names = [("Dockerfile", n) for n in image_env()]
    for name, svc in load_compose()["services"].items():
        names += [(f"compose:{name}", n) for n in compose_environment(svc)]
    for file, doc in k8s_of_kind("ConfigMap"):
        names += [(file, n) for n in doc.get("data", {})]
    for c in CONTAINERS:
        names += [(c.where, n) for n in c.declared]
    return [(where, n) for where, n in names if n.startswith("GAPWATCH_")]


def test_every_gapwatch_variable_names_a_setting() -> None:
    valid = setting_paths()
    names = declared_gapwatch_names()
    assert names, "no GAPWATCH_* variables found at all"
    unknown = sorted({f"{where}: {n}" for where, n in names if n not in valid})
    assert not unknown, f"not a Settings field (valid: {sorted(valid)}): {unknown}"


@by_id(CONTAINERS)
def test_container_environment_parses_and_lands_in_settings(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(container.env, monkeypatch)
    paths = setting_paths()
    for name, value in container.env.items():
        if name not in paths or value is None:
            continue
        got: Any = settings
        for part in paths[name]:
            got = getattr(got, part)
        adapter = TypeAdapter(field_annotation(paths[name]))
        try:
            expected = adapter.validate_strings(value)
        except ValidationError:
            # Lists and tuples come as JSON, as pydantic-settings reads them.
            expected = adapter.validate_json(value)
        assert got == expected, f"{name}={value!r} did not land: settings has {got!r}"


# --- tests: images and commands ------------------------------------------------------------


def all_images() -> list[tuple[str, str]]:
    stages = dockerfile_stages()
    names = {rest.split()[-1] for instr, rest in dockerfile_instructions() if instr == "FROM"}
    images = [("Dockerfile", img) for img, _ in stages if img not in names]
    for name, svc in load_compose()["services"].items():
        assert "image" in svc or "build" in svc, f"compose:{name} has neither image nor build"
        if "image" in svc:
            images.append((f"compose:{name}", svc["image"]))
    for file, doc in k8s_of_kind(*WORKLOAD_KINDS):
        spec = pod_template(doc)["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            images.append((f"{file}:{c['name']}", c["image"]))
    return images


def test_images_are_pinned() -> None:
    unpinned = []
    for where, image in all_images():
        last = image.rsplit("/", 1)[-1]
        tag = last.split(":", 1)[1] if ":" in last else ""
        if "@sha256:" not in image and tag in {"", "latest"}:
            unpinned.append(f"{where}: {image}")
    assert not unpinned, f"pin these images to a version: {unpinned}"


def test_gapwatch_image_tag_is_the_project_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    tags = {c.where: c.image.rsplit(":", 1)[-1] for c in CONTAINERS if c.image}
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    for entry in kustomization.get("images", []):
        if entry["name"] == "gapwatch" and "newTag" in entry:
            tags["kustomization.yaml"] = str(entry["newTag"])
    assert tags
    wrong = {where: tag for where, tag in tags.items() if tag != version}
    assert not wrong, f"gapwatch image tags differ from pyproject version {version}: {wrong}"


def test_sub_command_map_matches_the_cli() -> None:
    assert set(cli._COMMANDS) == set(COMMAND_MODULES.values())
    cli_parser()  # every existing module registers the name we expect


@by_id(CONTAINERS)
def test_container_runs_a_real_gapwatch_sub_command(container: Container) -> None:
    if container.source == "k8s":
        assert container.spec.get("command") in (None, ["gapwatch"]), "keep the entrypoint"
    else:
        assert container.spec.get("entrypoint") is None, "keep the image's gapwatch entrypoint"
    assert container.args, "no sub-command: the image would only print --help"
    role, _ = parse_command(container.args)
    assert role in COMMAND_MODULES


def test_dockerfile_installs_the_project_and_runs_gapwatch_as_non_root() -> None:
    base, _ = dockerfile_stages()[-1]
    assert re.fullmatch(r"python:3\.11[.\d]*-slim.*", base), base
    runs = [rest for instr, rest in dockerfile_instructions() if instr == "RUN"]
    assert any(re.search(r"pip install (--\S+ )*\.(\s|$)", r) for r in runs), "no `pip install .`"
    stage = runtime_stage()
    assert ("ENTRYPOINT", '["gapwatch"]') in stage
    users = [rest for instr, rest in stage if instr == "USER"]
    assert users, "the image runs as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "USER must be a numeric non-root uid"


def test_dockerfile_copies_exist_and_schemas_land_where_settings_look() -> None:
    for instr, rest in dockerfile_instructions():
        if instr != "COPY" or "--from=" in rest:
            continue
        *sources, _ = [w for w in shlex.split(rest) if not w.startswith("--")]
        assert any(any(ROOT.glob(s.rstrip("/"))) for s in sources), f"COPY {rest}: no source"
    schemas_dir = image_env().get("GAPWATCH_SCHEMAS_DIR")
    assert schemas_dir, "set GAPWATCH_SCHEMAS_DIR: <checkout>/schemas is gone once installed"
    copies = [shlex.split(rest) for instr, rest in runtime_stage() if instr == "COPY"]
    assert any(
        w[0].rstrip("/") == "schemas" and w[-1].rstrip("/") == schemas_dir for w in copies
    ), f"schemas/ is not copied to {schemas_dir}"


def test_image_alone_serves_its_exposed_ports_on_all_interfaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `docker run -p 8000:8000 gapwatch:... api` must work without extra variables.
    settings = settings_for(dict(image_env()), monkeypatch)
    exposed = {w for instr, rest in runtime_stage() if instr == "EXPOSE" for w in rest.split()}
    for role in SERVER_ROLES:
        assert str(listen_port(role, settings)) in exposed, role
        assert listen_host(role, settings) in ALL_INTERFACES, role


# --- tests: listening and probes -----------------------------------------------------------

SERVERS = [c for c in CONTAINERS if not c.init and c.role in SERVER_ROLES]


@by_id(SERVERS)
def test_server_listens_on_all_interfaces(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert serving(container, monkeypatch)[0] in ALL_INTERFACES


COMPOSE_SERVERS = [c for c in SERVERS if c.source == "compose"]


@by_id(COMPOSE_SERVERS)
def test_compose_healthcheck_probes_the_service_port(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = container.spec.get("healthcheck") or {}
    test = check.get("test", [])
    text = test if isinstance(test, str) else " ".join(test[1:])
    assert not check.get("disable") and text, "no healthcheck"
    assert not re.search(r"\b(curl|wget)\b", text), "the slim image has neither curl nor wget"
    urls = re.findall(r"https?://([^/:'\"\s]+):(\d+)(/[^'\"\s)]*)", text)
    assert urls, f"no http://host:port/path in the healthcheck: {text}"
    port = serving(container, monkeypatch)[1]
    for host, got_port, path in urls:
        assert host in {"127.0.0.1", "localhost"}
        assert path in HEALTH_PATHS
        assert int(got_port) == port, f"healthcheck on {got_port}, service listens on {port}"


def test_long_running_compose_services_have_healthchecks() -> None:
    # gapwatch one-shots and the publisher serve no HTTP: restart policies cover them.
    servers = {c.owner for c in COMPOSE_SERVERS}
    no_http = {c.owner for c in CONTAINERS if c.source == "compose"} - servers
    for name, svc in load_compose()["services"].items():
        if svc.get("restart", "no") != "no" and name not in no_http:
            assert svc.get("healthcheck", {}).get("test"), f"compose:{name} has no healthcheck"


def test_compose_api_port_is_published(monkeypatch: pytest.MonkeyPatch) -> None:
    apis = [c for c in COMPOSE_SERVERS if c.role == "api"]
    assert apis, "no api service in docker-compose.yml"
    for c in apis:
        port = serving(c, monkeypatch)[1]
        targets = [
            int(p["target"] if isinstance(p, dict) else str(p).rsplit(":", 1)[-1].split("/")[0])
            for p in c.spec.get("ports", [])
        ]
        assert port in targets, f"{c.where}: container port {port} not published"


K8S_SERVERS = [c for c in SERVERS if c.source == "k8s"]


def resolve_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
    assert port in named, f"port {port!r} is not a named containerPort"
    return int(named[port])


@by_id(K8S_SERVERS)
def test_k8s_probes_hit_health_paths_on_the_listen_port(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = serving(container, monkeypatch)[1]
    c = container.spec
    assert port in [p["containerPort"] for p in c.get("ports", [])], "containerPort"
    expected = {"readinessProbe": {"/readyz"}, "livenessProbe": {"/healthz"}}
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        if kind == "startupProbe" and kind not in c:
            continue
        get = c[kind]["httpGet"]
        assert get["path"] in expected.get(kind, HEALTH_PATHS), f"{kind} path {get['path']}"
        assert resolve_port(c, get["port"]) == port, f"{kind} port, listening on {port}"


def test_every_workload_container_has_resources_and_deployments_have_probes() -> None:
    for file, doc in k8s_of_kind(*WORKLOAD_KINDS):
        spec = pod_template(doc)["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            where = f"{file}:{c['name']}"
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    assert what in res.get(part, {}), f"{where}: no {part}.{what}"
        if doc["kind"] == "Deployment":
            for c in spec["containers"]:
                for probe in ("readinessProbe", "livenessProbe"):
                    assert probe in c, f"{file}:{c['name']}: no {probe}"


def test_k8s_scrape_annotations_name_the_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    workloads = {d["metadata"]["name"]: d for _, d in k8s_of_kind(*WORKLOAD_KINDS)}
    assert {c.role for c in K8S_SERVERS} == set(SERVER_ROLES)
    for c in K8S_SERVERS:
        annotations = pod_template(workloads[c.owner])["metadata"].get("annotations", {})
        port = serving(c, monkeypatch)[1]
        assert annotations.get("prometheus.io/scrape") == "true", c.where
        assert annotations.get("prometheus.io/port") == str(port), c.where
        assert annotations.get("prometheus.io/path", "/metrics") == "/metrics", c.where


def test_pods_run_as_the_images_non_root_user() -> None:
    uid = int(next(r for i, r in reversed(runtime_stage()) if i == "USER").split(":")[0])
    for file, doc in k8s_of_kind(*WORKLOAD_KINDS):
        spec = pod_template(doc)["spec"]
        pod = spec.get("securityContext", {})
        for c in spec.get("initContainers", []) + spec["containers"]:
            ctx = {**pod, **c.get("securityContext", {})}
            assert ctx.get("runAsNonRoot") is True, f"{file}:{c['name']}: runAsNonRoot"
            assert ctx.get("allowPrivilegeEscalation") is False, f"{file}:{c['name']}"
            if image_name(c["image"]) == "gapwatch":
                assert ctx.get("runAsUser", uid) == uid, f"{file}: image USER is {uid}"


# --- tests: Kafka partitions and ordering --------------------------------------------------


def test_ingest_replicas_do_not_exceed_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    workloads = {d["metadata"]["name"]: d for _, d in k8s_of_kind(*WORKLOAD_KINDS)}
    hpas = [d["spec"] for _, d in k8s_of_kind("HorizontalPodAutoscaler")]
    workers = [c for c in CONTAINERS if not c.init and c.role == "ingest"]
    assert {c.source for c in workers} == {"compose", "k8s"}, "ingest missing somewhere"
    for c in workers:
        partitions = settings_for(c.env, monkeypatch).kafka.partitions
        if c.source == "compose":
            replicas = (c.spec.get("deploy") or {}).get("replicas", 1)
        else:
            replicas = workloads[c.owner]["spec"].get("replicas", 1)
            for hpa in hpas:
                if hpa["scaleTargetRef"]["name"] == c.owner:
                    replicas = max(replicas, hpa["maxReplicas"])
        assert replicas <= partitions, f"{c.where}: {replicas} replicas > {partitions} partitions"


def kafka_of(c: Container, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, ...]:
    k = settings_for(c.env, monkeypatch).kafka
    return (k.bootstrap, k.topic, k.dlq_topic, k.partitions)


def bootstrap_host(c: Container, monkeypatch: pytest.MonkeyPatch) -> str:
    return settings_for(c.env, monkeypatch).kafka.bootstrap.split(",")[0].rsplit(":", 1)[0]


def gates(containers: list[Container]) -> dict[str, list[Container]]:
    """Gate role -> the containers that run it (`topics create`, `refdata check`)."""
    return {
        role: [c for c in containers if c.role == role and action in c.args]
        for role, action in GATE_ACTIONS.items()
    }


def test_compose_runs_the_gates_before_the_services_that_need_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = load_compose()["services"]
    compose = [c for c in CONTAINERS if c.source == "compose"]
    found = gates(compose)
    assert all(found.values()), f"a gate has no compose service: {found}"
    for t in found["topics"]:
        host = bootstrap_host(t, monkeypatch)
        assert host in services, f"bootstrap host {host!r} is not a compose service"
        condition = (t.spec.get("depends_on") or {}).get(host, {}).get("condition")
        assert condition == "service_healthy", f"{t.where} must wait for a healthy {host}"
    users = [c for c in compose if c.role in NEEDS]
    assert {c.role for c in users} == set(NEEDS)
    for c in users:
        deps = c.spec.get("depends_on") or {}
        assert isinstance(deps, dict), f"{c.where}: depends_on needs conditions"
        done = {n for n, d in deps.items() if d.get("condition") == COMPLETED}
        for gate in NEEDS[c.role]:
            waited = [g for g in found[gate] if g.owner in done]
            assert waited, f"{c.where} does not wait for `{gate} {GATE_ACTIONS[gate]}`"
            if gate == "topics":
                assert kafka_of(c, monkeypatch) == kafka_of(waited[0], monkeypatch), c.where


def test_k8s_runs_the_gates_before_the_services_that_need_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    k8s = [c for c in CONTAINERS if c.source == "k8s"]
    found = gates(k8s)
    jobs = [c for c in found["topics"] if c.kind == "Job"]
    assert jobs, "no Job runs `gapwatch topics create`"
    users = [c for c in k8s if c.role in NEEDS and not c.init]
    assert {c.role for c in users} >= set(SERVER_ROLES)
    for c in users:
        # kubectl apply does not wait for Jobs: only init containers order start-up.
        for gate in NEEDS[c.role]:
            inits = [g for g in found[gate] if g.init and g.owner == c.owner]
            assert inits, f"{c.where}: no init container runs `{gate} {GATE_ACTIONS[gate]}`"
            if gate == "topics":
                for g in inits + jobs:
                    assert kafka_of(g, monkeypatch) == kafka_of(c, monkeypatch), g.where


def test_compose_clients_reach_kafka_and_redis_by_advertised_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    services = load_compose()["services"]
    kafkas = {n: s for n, s in services.items() if image_name(s.get("image", "")) == "kafka"}
    assert kafkas, "no Kafka service"
    brokers = sum(
        "broker" in str(s["environment"].get("KAFKA_PROCESS_ROLES", "")) for s in kafkas.values()
    )
    advertised = {
        re.sub(r"^\w+://", "", listener)
        for s in kafkas.values()
        for listener in str(s["environment"]["KAFKA_ADVERTISED_LISTENERS"]).split(",")
    }
    for c in (c for c in CONTAINERS if c.source == "compose"):
        settings = settings_for(c.env, monkeypatch)
        for address in settings.kafka.bootstrap.split(","):
            # A bootstrap address that is not advertised works for the first request only:
            # the broker then sends clients to the addresses it advertises.
            assert address in advertised, f"{c.where}: {address} not in {sorted(advertised)}"
        assert settings.kafka.replication_factor <= brokers, f"{c.where}: replication factor"
        redis_host = settings.redis.url.split("://", 1)[1].split("/")[0].split("@")[-1]
        assert redis_host.rsplit(":", 1)[0] in services, f"{c.where}: Redis {redis_host}"


# --- tests: Prometheus ---------------------------------------------------------------------


def prometheus_targets() -> Iterator[tuple[str, int, str]]:
    """(host, port, metrics path) for every target in deploy/prometheus/prometheus.yml."""
    for job in yaml.safe_load(PROMETHEUS_FILE.read_text())["scrape_configs"]:
        path = job.get("metrics_path", "/metrics")
        other = [k for k in job if k.endswith("_sd_configs") and k != "dns_sd_configs"]
        assert not other, f"{job['job_name']}: teach this test {other}"
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                yield host, int(port), path
        for dns in job.get("dns_sd_configs", []):
            for name in dns["names"]:
                yield name, int(dns["port"]), path


def test_prometheus_scrapes_every_compose_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    targets = set(prometheus_targets())
    services = load_compose()["services"]
    for host, _, _ in targets:
        assert host == "localhost" or host in services, f"scrape target {host!r} is no service"
    assert COMPOSE_SERVERS
    for c in COMPOSE_SERVERS:
        port = serving(c, monkeypatch)[1]
        assert (c.owner, port, "/metrics") in targets, f"no scrape of {c.owner}:{port}/metrics"
    prom = [s for s in services.values() if image_name(s.get("image", "")) == "prometheus"]
    assert prom, "no prometheus service"
    mounts = [str(v).split(":")[:2] for v in prom[0].get("volumes", [])]
    assert any(
        (COMPOSE_FILE.parent / src).resolve() == PROMETHEUS_FILE
        and dst == "/etc/prometheus/prometheus.yml"
        for src, dst in mounts
    ), "deploy/prometheus/prometheus.yml is not mounted as the config"


def test_prometheus_config_passes_promtool() -> None:
    promtool = shutil.which("promtool")
    need(promtool is not None, "promtool not installed (Debian package 'prometheus')")
    assert promtool is not None
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- tests: reference data -----------------------------------------------------------------

REFDATA_ROLES = {"ingest", "api", "publish", "refdata"}


def compose_mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """target -> (source, read_only)."""
    out = {}
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            out[v["target"]] = (v.get("source", ""), bool(v.get("read_only")))
        else:
            src, dst, *mode = str(v).split(":")
            out[dst] = (src, "ro" in mode)
    return out


def test_refdata_dir_is_one_shared_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    named = set(load_compose().get("volumes") or {})
    claims = {d["metadata"]["name"] for _, d in k8s_of_kind("PersistentVolumeClaim")}
    workloads = {d["metadata"]["name"]: d for _, d in k8s_of_kind(*WORKLOAD_KINDS)}
    sources: dict[str, set[str]] = {"compose": set(), "k8s": set()}
    for c in CONTAINERS:
        if c.role not in REFDATA_ROLES:
            continue
        target = str(settings_for(c.env, monkeypatch).refdata.dir)
        if c.source == "compose":
            src, read_only = compose_mounts(c.spec).get(target, ("", False))
            assert src in named or src[:1] in "./", f"{c.where}: nothing at {target}"
        else:
            volumes = {v["name"]: v for v in pod_template(workloads[c.owner])["spec"]["volumes"]}
            mount = [m for m in c.spec.get("volumeMounts", []) if m["mountPath"] == target]
            assert mount, f"{c.where}: nothing mounted at {target}"
            src = volumes[mount[0]["name"]].get("persistentVolumeClaim", {}).get("claimName")
            assert src in claims, f"{c.where}: {target} is not a PVC from deploy/k8s"
            read_only = bool(mount[0].get("readOnly"))
        sources[c.source].add(src)
        assert read_only or c.role == "refdata", f"{c.where}: only `refdata build` writes"
    for where, found in sources.items():
        assert len(found) == 1, f"{where}: every reader must share one volume: {found}"


# --- tests: Kubernetes wiring --------------------------------------------------------------


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    files = {p.name for p in k8s_files()} - {"kustomization.yaml"}
    assert listed == files, f"missing: {files - listed}, not a file: {listed - files}"


def test_configmap_values_are_strings() -> None:
    for name, data in configmaps().items():
        bad = {k: v for k, v in data.items() if not isinstance(v, str)}
        assert not bad, f"ConfigMap {name}: quote these values: {bad}"


def test_k8s_references_resolve() -> None:
    deployments = {d["metadata"]["name"]: d for _, d in k8s_of_kind("Deployment")}
    labels = {n: pod_template(d)["metadata"]["labels"] for n, d in deployments.items()}
    for name, doc in deployments.items():
        assert matches(doc["spec"]["selector"]["matchLabels"], labels[name]), name
    for file, svc in k8s_of_kind("Service"):
        target = [n for n, lab in labels.items() if matches(svc["spec"]["selector"], lab)]
        assert target, f"{file}: selector matches no Deployment"
        containers = pod_template(deployments[target[0]])["spec"]["containers"]
        for port in svc["spec"]["ports"]:
            want = port.get("targetPort", port["port"])
            exposed = {p.get("name") for c in containers for p in c.get("ports", [])}
            exposed |= {p["containerPort"] for c in containers for p in c.get("ports", [])}
            assert want in exposed, f"{file}: targetPort {want} is not a container port"
    for file, pdb in k8s_of_kind("PodDisruptionBudget"):
        selector = pdb["spec"]["selector"]["matchLabels"]
        assert any(matches(selector, lab) for lab in labels.values()), f"{file}: no pods"
    for file, hpa in k8s_of_kind("HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        assert target in deployments, f"{file}: no Deployment {target}"
        assert "replicas" not in deployments[target]["spec"], f"{target}: the HPA owns replicas"
        assert hpa["apiVersion"] == "autoscaling/v2"


# --- tests: the token signing key ----------------------------------------------------------

SIGNING_KEY = "GAPWATCH_AUTH_JWT_SECRET"


def test_the_api_gets_its_signing_key_from_a_secret_and_nothing_else_gets_it() -> None:
    apis = [c for c in CONTAINERS if c.role == "api" and not c.init]
    assert {c.source for c in apis} == {"compose", "k8s"}, "an API is missing somewhere"
    for c in apis:
        assert SIGNING_KEY in c.declared, f"{c.where}: the API will not start without {SIGNING_KEY}"
        assert c.declared[SIGNING_KEY] is None, f"{c.where}: {SIGNING_KEY} must not be a value"
        if c.source == "compose":
            raw = str(c.spec["environment"][SIGNING_KEY])
            # ":?": compose stops with this message instead of starting an API that cannot.
            assert re.fullmatch(r"\$\{" + SIGNING_KEY + r":\?[^}]+\}", raw), raw
        else:
            refs = [e for e in c.spec.get("env", []) if e["name"] == SIGNING_KEY]
            assert len(refs) == 1 and "secretKeyRef" in refs[0].get("valueFrom", {}), c.where
            assert not refs[0]["valueFrom"]["secretKeyRef"].get("optional", False), c.where
    others = [c for c in CONTAINERS if c not in apis]
    holding = [c.where for c in others if SIGNING_KEY in c.declared]
    assert not holding, f"only the API signs and checks tokens: {holding}"
    for data in configmaps().values():
        assert SIGNING_KEY not in data, "a key in a ConfigMap is readable by anyone who lists it"
    secrets = [f for f, _ in k8s_of_kind("Secret")]
    assert not secrets, f"no Secret (so no key) belongs in the repository: {secrets}"
