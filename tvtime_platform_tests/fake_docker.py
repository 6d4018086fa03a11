"""An emulated container runtime for moto's AWS Batch: the Docker Engine API on 127.0.0.1, containers as local
processes.

moto runs a submitted Batch job by asking Docker to create, start, wait for and read the logs of a
container, then records its exit code and log lines (CloudWatch) as AWS would. Docker cannot run
here, so this server answers those calls and runs the job's command exactly as submitted (its
arguments and environment) as a local process: an image is known as the local folder its
Dockerfile copies to `/app`, `python` is this interpreter, and the emulated cloud's settings
(`AWS_ENDPOINT_URL` pointing at moto) are added to the environment, as AWS's own would be in a
real container.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import struct
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

IMAGE_ROOT = "/app/"
STDOUT, STDERR = 1, 2


@dataclass
class Container:
    name: str
    image: str
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen | None = None
    lines: list[tuple[int, dt.datetime, str]] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    def state(self) -> dict:
        running = self.process is not None and self.process.poll() is None
        code = 0 if self.process is None or running else self.process.returncode
        return {
            "Status": "running" if running else ("exited" if self.process else "created"),
            "Running": running,
            "ExitCode": code,
        }


class FakeDocker(ThreadingHTTPServer):
    """Serves the Docker API calls moto's Batch makes; `images` maps image names to local folders."""

    def __init__(self, images: dict[str, Path], environment: dict[str, str]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.images, self.environment = images, environment
        self.containers: dict[str, Container] = {}
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FakeDocker:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for container in self.containers.values():
            if container.process and container.process.poll() is None:
                container.process.kill()
        self.shutdown()
        self.server_close()

    def folder(self, image: str) -> Path | None:
        return self.images.get(image) or self.images.get(image.split("/")[-1])

    def start(self, container: Container) -> None:
        folder = self.folder(container.image)
        command = [
            sys.executable
            if arg == "python"
            else str(folder / arg[len(IMAGE_ROOT) :])
            if arg.startswith(IMAGE_ROOT)
            else arg
            for arg in container.command
        ]
        env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), **container.env, **self.environment}
        container.process = subprocess.Popen(
            command, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for stream, pipe in ((STDOUT, container.process.stdout), (STDERR, container.process.stderr)):
            reader = threading.Thread(target=_collect, args=(container, stream, pipe), daemon=True)
            reader.start()
            container.readers.append(reader)


def _collect(container: Container, stream: int, pipe) -> None:
    for line in pipe:
        container.lines.append((stream, dt.datetime.now(dt.UTC), line.rstrip("\n")))


def _flag(query: dict, name: str) -> bool:
    """A boolean query parameter as docker-py sends it."""
    return query.get(name) in ("1", "True", "true")


class _Handler(BaseHTTPRequestHandler):
    server: FakeDocker

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, status: int, body: object = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw is None else "application/vnd.docker.raw-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> tuple[str, dict]:
        parsed = urlparse(self.path)
        return re.sub(r"^/v[\d.]+", "", parsed.path), {k: v[0] for k, v in parse_qs(parsed.query).items()}

    def _container(self, path: str) -> Container | None:
        match = re.match(r"^/containers/([^/]+)", path)
        return self.server.containers.get(match.group(1)) if match else None

    def do_GET(self) -> None:
        path, query = self._route()
        if path == "/_ping":
            return self._send(200, raw=b"OK")
        if path == "/version":
            return self._send(
                200,
                {"ApiVersion": "1.45", "MinAPIVersion": "1.24", "Version": "emulated", "Os": "linux", "Arch": "amd64"},
            )
        if match := re.match(r"^/images/(.+)/json$", path):
            known = self.server.folder(match.group(1))
            return (
                self._send(
                    200,
                    {
                        "Id": f"sha256:{uuid.uuid5(uuid.NAMESPACE_URL, match.group(1)).hex}",
                        "RepoTags": [match.group(1)],
                    },
                )
                if known
                else self._send(404, {"message": f"No such image: {match.group(1)}"})
            )
        container = self._container(path)
        if container is None:
            return self._send(404, {"message": "No such container"})
        if path.endswith("/json"):
            return self._send(
                200,
                {
                    "Id": path.split("/")[2],
                    "Name": f"/{container.name}",
                    "State": container.state(),
                    "Config": {"Image": container.image, "Cmd": container.command, "Tty": False},
                    "NetworkSettings": {"Networks": {}, "IPAddress": ""},
                },
            )
        if path.endswith("/logs"):
            if container.process:
                container.process.wait()
                for reader in container.readers:
                    reader.join()
            since = float(query.get("since", 0))
            wanted = {stream for stream, name in ((STDOUT, "stdout"), (STDERR, "stderr")) if _flag(query, name)}
            frames = b""
            for stream, at, line in container.lines:
                if stream in wanted and at.timestamp() >= since:
                    payload = f"{at.strftime('%Y-%m-%dT%H:%M:%S.%fZ')} " if _flag(query, "timestamps") else ""
                    payload = (payload + line + "\n").encode()
                    frames += struct.pack(">BxxxL", stream, len(payload)) + payload
            return self._send(200, raw=frames)
        self._send(404, {"message": f"not emulated: GET {path}"})

    def do_POST(self) -> None:
        path, query = self._route()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/images/create":
            image = f"{query.get('fromImage')}:{query.get('tag', 'latest')}"
            return (
                self._send(200, {"status": "available"})
                if self.server.folder(image)
                else self._send(404, {"message": f"pull access denied for {image}"})
            )
        if path == "/containers/create":
            spec = json.loads(body or b"{}")
            if not self.server.folder(spec["Image"]):
                return self._send(404, {"message": f"No such image: {spec['Image']}"})
            command = spec.get("Cmd") or []
            container_id = uuid.uuid4().hex
            self.server.containers[container_id] = Container(
                query.get("name", container_id),
                spec["Image"],
                command if isinstance(command, list) else command.split(),
                dict(item.split("=", 1) for item in spec.get("Env") or []),
            )
            return self._send(201, {"Id": container_id, "Warnings": []})
        container = self._container(path)
        if container is None:
            return self._send(404, {"message": "No such container"})
        if path.endswith("/start"):
            self.server.start(container)
            return self._send(204)
        if path.endswith("/wait"):
            code = container.process.wait() if container.process else 0
            return self._send(200, {"StatusCode": code, "Error": None})
        if path.endswith("/kill"):
            if container.process and container.process.poll() is None:
                container.process.kill()
            return self._send(204)
        self._send(404, {"message": f"not emulated: POST {path}"})

    def do_DELETE(self) -> None:
        path, _ = self._route()
        container = self._container(path)
        if container:
            self.server.containers.pop(path.split("/")[2], None)
        self._send(204)
