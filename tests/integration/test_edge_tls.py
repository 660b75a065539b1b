"""api-edge serves the partner URL over TLS itself (EDGE_TLS_CERTFILE / EDGE_TLS_KEYFILE): a self-signed certificate
made at test time, the platform's call over https, plain http refused on the same port."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from grizzly_testkit.infra import ServiceProcess

from tests.integration.fixtures import UPSTREAM_KEY


def self_signed(directory: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_the_partner_url_over_https_with_the_edges_own_tls(
    start_service: Callable[..., ServiceProcess], stack_env: dict[str, str], tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    start_service("pool")
    env = dict(stack_env, EDGE_TLS_CERTFILE=str(cert), EDGE_TLS_KEYFILE=str(key))
    log = (tmp_path / "edge.log").open("wb")
    edge = subprocess.Popen([sys.executable, "-m", "grizzly_edge"], env=env, stdout=log, stderr=log)
    try:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert)), timeout=5) as client:
            ops = f"https://127.0.0.1:{env['EDGE_OPS_PORT']}"  # every listener speaks TLS
            deadline = time.monotonic() + 60
            while True:
                assert edge.poll() is None, (tmp_path / "edge.log").read_text()
                try:
                    if client.get(ops + "/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "edge.log").read_text()
                time.sleep(0.2)
            partner = f"https://127.0.0.1:{env['EDGE_PORT']}/"
            reply = client.post(partner, json={"action": "GET_SERVICES", "key": UPSTREAM_KEY})
            assert reply.status_code == 200 and reply.json()["status"] == "SUCCESS"
        with pytest.raises(httpx.TransportError):
            httpx.post(f"http://127.0.0.1:{env['EDGE_PORT']}/", json={"action": "GET_SERVICES"}, timeout=5)
        with pytest.raises(httpx.ConnectError):  # not the certificate of a trusted authority
            httpx.post(partner, json={"action": "GET_SERVICES"}, timeout=5)
    finally:
        edge.terminate()
        edge.wait(timeout=30)
        log.close()
