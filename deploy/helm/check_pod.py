"""Run the Helm chart's pod with podman, as the chart renders it, and use it: no cluster needed.

Renders deploy/helm/ragkit (helm-python-sdk), turns the Deployment's container into ``podman run``
flags (read-only root filesystem, user, dropped capabilities, the settings file and recipes from the
ConfigMap mounted where the chart mounts them, the Secret's API keys, /data and /tmp volumes, the
memory limit), starts it with ``--network=none``, then inside the container: the startup, liveness
and readiness probe paths answer 200, a collection is created from a recipe the chart mounted, a
document is uploaded and ingested, and a question gets a cited answer from the packaged model.

    CONTAINERS_CONF=deploy/containers.conf .venv/bin/python deploy/helm/check_pod.py
    IMAGE=localhost/ragkit:cpu ...   # the image deploy/build.sh built (default)
    READY_TIMEOUT=300 ...            # seconds to wait for the startup probe path (a busy machine is slow)

Prints one line per check and ends with "chart pod check: N passed, 0 failed" (exit 0) or the
failure (exit 1).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parent / "ragkit"
RECIPE = "description: Short chunks\ncollection:\n  splitter: {type: markdown, chunk_size: 400}\n"
DOCUMENT = "# Super Bowl 50\n\nSuper Bowl 50 was played at Levi's Stadium in Santa Clara, California.\n"

# runs inside the container (the image has Python, not curl): one HTTP call, JSON out
CALL = """
import json, sys, urllib.error, urllib.request
method, path, key, body, ctype = sys.argv[1:6]
headers = {"Authorization": "Bearer " + key} if key else {}
data = body.encode() if body else None
if data: headers["Content-Type"] = ctype
request = urllib.request.Request("http://127.0.0.1:8000" + path, data=data, method=method, headers=headers)
try:
    with urllib.request.urlopen(request, timeout=300) as response:
        print(json.dumps([response.status, json.loads(response.read() or b"null")]))
except urllib.error.HTTPError as error:
    print(json.dumps([error.code, error.read().decode(errors="replace")[:500]]))
except OSError as error:
    print(json.dumps([0, str(error)]))
"""


def render(image: str, key: str) -> tuple[dict[str, Any], dict[str, str], str]:
    """The chart's container spec, its ConfigMap data, and the API keys in its Secret."""
    repository, tag = image.rsplit(":", 1)
    values = {"image": {"repository": repository, "tag": tag}, "apiKeys": {"value": f"{key}:admin"}}
    values["recipes"] = {"short.yaml": RECIPE}
    out = helm.Chart.load(CHART).render(values, name="check", namespace="default", is_install=True)
    texts = [text for path, text in out.items() if path.endswith(".yaml")]
    docs = {d["kind"]: d for text in texts for d in yaml.safe_load_all(text) if d}
    secret = base64.b64decode(docs["Secret"]["data"]["RAGKIT_API_KEYS"]).decode()
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    container = {**pod["containers"][0], "podSecurityContext": pod["securityContext"], "volumes": pod["volumes"]}
    return container, docs["ConfigMap"]["data"], secret


def podman_args(container: dict[str, Any], config: dict[str, str], keys: str, folder: Path, name: str) -> list[str]:
    """``podman run`` flags that give the container what the chart gives it."""
    pod_security, security = container["podSecurityContext"], container["securityContext"]
    args = ["podman", "run", "-d", "--name", name, "--network=none"]
    args += ["--user", f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}"]
    if security.get("readOnlyRootFilesystem"):
        args += ["--read-only", "--read-only-tmpfs=false"]
    if "ALL" in security.get("capabilities", {}).get("drop", []):
        args.append("--cap-drop=ALL")
    if security.get("allowPrivilegeEscalation") is False:
        args.append("--security-opt=no-new-privileges")
    if memory := container["resources"].get("limits", {}).get("memory"):
        args += ["--memory", memory.replace("Gi", "g").replace("Mi", "m")]
    volumes = {v["name"]: v for v in container["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            source = folder / mount["subPath"]
            source.write_text(config[mount["subPath"]])
            args += ["-v", f"{source}:{mount['mountPath']}:ro"]
        elif "emptyDir" in volume:
            args += ["--tmpfs", f"{mount['mountPath']}:rw,mode=1777"]
        else:  # the PVC: a podman volume of its own
            args += ["-v", f"{name}-data:{mount['mountPath']}"]
    for env in container["env"]:
        value = keys if env["name"] == "RAGKIT_API_KEYS" else env.get("value")
        if value is None:
            raise SystemExit(f"env {env['name']}: from a secret this check does not make")
        args += ["-e", f"{env['name']}={value}"]
    return [*args, container["image"], *container["args"]]


def main() -> int:
    """Render, run, check, clean up; 0 when every check passed."""
    image = os.environ.get("IMAGE", "localhost/ragkit:cpu")
    key = "check-" + secrets.token_hex(12)
    name = f"ragkit-chart-check-{os.getpid()}"
    passed = 0

    def ok(message: str) -> None:
        nonlocal passed
        passed += 1
        print(f"check_pod: ok - {message}", file=sys.stderr)

    def call(method: str, path: str, body: str = "", ctype: str = "application/json", auth: bool = True) -> Any:
        command = ["podman", "exec", name, "python", "-c", CALL, method, path, key if auth else "", body, ctype]
        result = subprocess.run(command, capture_output=True, text=True, timeout=400, check=False)
        return json.loads(result.stdout) if result.stdout.strip() else [0, result.stderr[-500:]]

    container, config, keys = render(image, key)
    with tempfile.TemporaryDirectory() as folder:
        args = podman_args(container, config, keys, Path(folder), name)
        try:
            started = time.monotonic()
            subprocess.run(args, check=True, capture_output=True, timeout=120)
            probes = {p: container[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")}
            deadline = time.monotonic() + float(os.environ.get("READY_TIMEOUT", "300"))
            while call("GET", probes["startupProbe"], auth=False)[0] != 200:
                if time.monotonic() > deadline:
                    raise AssertionError(f"no answer on {probes['startupProbe']}: " + _logs(name))
                time.sleep(0.5)
            for probe, path in probes.items():
                status, body = call("GET", path, auth=False)
                assert status == 200, (probe, path, status, body)
            ok(f"probes {sorted(set(probes.values()))} answer 200, {time.monotonic() - started:.1f} s after start")
            status, body = call("POST", "/v1/collections", json.dumps({"name": "docs", "recipe": "short"}))
            assert status == 201 and body["config"]["splitter"]["chunk_size"] == 400, (status, body)
            ok("a collection made from the recipe the chart mounted (recipes: short.yaml)")
            boundary = secrets.token_hex(8)
            upload = (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="sb.md"\r\n'
                f"Content-Type: text/markdown\r\n\r\n{DOCUMENT}\r\n--{boundary}--\r\n"
            )
            status, job = call(
                "POST", "/v1/collections/docs/documents", upload, f"multipart/form-data; boundary={boundary}"
            )
            assert status == 202, (status, job)
            for _ in range(240):
                status, job = call("GET", f"/v1/jobs/{job['id']}")
                if job["status"] not in ("queued", "running"):
                    break
                time.sleep(0.5)
            assert job["status"] == "succeeded", job
            ok("upload ingested on the /data volume under a read-only root filesystem")
            question = {"question": "Where was Super Bowl 50 played?", "max_tokens": 16}
            status, answer = call("POST", "/v1/collections/docs/ask", json.dumps(question))
            assert status == 200 and answer["citations"] and "Levi" in answer["text"], (status, answer)
            ok(f"cited answer from {answer['model']}: {answer['text']!r}")
            assert call("GET", "/v1/collections", auth=False)[0] == 401
            ok("routes need the API key from the chart's Secret")
        except (AssertionError, subprocess.SubprocessError, KeyError, TypeError) as error:
            print(f"check_pod: FAILED - {error!r}\n{_logs(name)}", file=sys.stderr)
            print(f"chart pod check: {passed} passed, 1 failed")
            return 1
        finally:
            subprocess.run(["podman", "rm", "-f", "-t", "35", name], capture_output=True, check=False)
            subprocess.run(["podman", "volume", "rm", "-f", f"{name}-data"], capture_output=True, check=False)
    print(f"chart pod check: {passed} passed, 0 failed")
    return 0


def _logs(name: str) -> str:
    result = subprocess.run(["podman", "logs", "--tail", "20", name], capture_output=True, text=True, check=False)
    return (result.stdout + result.stderr)[-3000:]


if __name__ == "__main__":
    sys.exit(main())
