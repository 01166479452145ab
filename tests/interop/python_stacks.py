"""Python receivers the project did not write the verification of: PyJWT (current, and a version
with CVE-2017-11424) and Authlib's RFC 9068 validator, each behind the same thin Starlette glue.

PyJWT is not a dependency of the kit, so its receivers run as subprocesses with the library
installed by pip into a cache directory (``--target``) and put on ``PYTHONPATH``: the project's
venv is never touched, and an old, vulnerable release can run next to a current one.

``python -m tests.interop.python_stacks STACK ...`` is the subprocess entry point: it prints one
JSON line ``{"url": ...}`` once the receiver answers, and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import selectors
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

REPO_ROOT = Path(__file__).resolve().parents[2]
PIP_DIR = Path(
    os.environ.get("WEBHOOK_KIT_PIP_DIR", Path.home() / ".cache" / "webhook-kit-interop" / "pip")
)
WEBHOOK_PATH = "/webhook"
#: The current PyJWT (PyJWKClient takes an ssl_context since 2.8) and the last release with
#: CVE-2017-11424 (a PKCS#1 PEM public key is accepted as an HMAC secret).
PYJWT = ("pyjwt==2.10.1",)
PYJWT_VULNERABLE = ("pyjwt==1.5.0", "cryptography==36.0.2")
#: Defects of the PyJWT receiver, one at a time.
PYJWT_DEFECTS = ("none", "no_signature", "no_exp", "forbidden")


class Rejected(Exception):
    """The bearer token is not valid; the receiver answers 401 (or its configured status)."""


Verify = Callable[[str], object]


def webhook_app(verify: Verify, *, refusal_status: int = 401) -> Starlette:
    """The glue every Python stack shares: bearer token from the header, the library's verdict,
    then the JSON body. ``verify`` raises :class:`Rejected` for a token it refuses."""

    def refuse(error: str | None) -> Response:
        challenge = 'Bearer realm="webhook"' + (f', error="{error}"' if error else "")
        return JSONResponse(
            {"error_type": "unauthorized", "error_message": "a valid bearer token is required"},
            status_code=refusal_status,
            headers={"WWW-Authenticate": challenge},
        )

    async def webhook(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return refuse(None)
        try:
            # Verifiers may fetch keys with blocking I/O.
            await run_in_threadpool(verify, token.strip())
        except Rejected:
            return refuse("invalid_token")
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            return JSONResponse(
                {"error_type": "bad_request", "error_message": "expected a JSON notification"},
                status_code=400,
            )
        return JSONResponse({"received": body.get("event_id")})

    return Starlette(routes=[Route(WEBHOOK_PATH, webhook, methods=["POST"])])


def ca_context(ca_file: str | Path) -> ssl.SSLContext:
    """Verified TLS that trusts the kit's CA (never an unverified context)."""
    return ssl.create_default_context(cafile=str(ca_file))


def fetch_json(url: str, ca_file: str | Path) -> Any:
    with urllib.request.urlopen(url, context=ca_context(ca_file), timeout=10) as answer:
        return json.load(answer)


# --- Authlib (in the venv: runs in-process) ------------------------------------------------


def authlib_verifier(jwks_url: str, issuer: str, audience: str, ca_file: Path) -> Verify:
    """Authlib's ``ResourceProtector`` with its RFC 9068 JWT access-token validator, keys from
    the issuer's JWKS (the kit's serve has no RFC 7662 introspection endpoint)."""
    from authlib.oauth2 import OAuth2Error, ResourceProtector
    from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
    from joserfc.jwk import KeySet

    jwks = KeySet.import_key_set(fetch_json(jwks_url, ca_file))

    class Validator(JWTBearerTokenValidator):  # type: ignore[misc]
        def get_jwks(self) -> KeySet:
            return jwks

    protector = ResourceProtector()
    protector.register_token_validator(Validator(issuer=issuer, resource_server=audience))

    class Headers:
        """What ``ResourceProtector.validate_request`` reads from a request."""

        def __init__(self, token: str) -> None:
            self.headers = {"Authorization": f"Bearer {token}"}

    def verify(token: str) -> object:
        try:
            return protector.validate_request(["webhook"], Headers(token))
        except OAuth2Error as exc:
            raise Rejected(str(exc)) from exc

    return verify


# --- PyJWT (pip --target, subprocess) -------------------------------------------------------


def pyjwt_verifier(jwks_url: str, issuer: str, audience: str, ca_file: Path, defect: str) -> Verify:
    """PyJWT's documented recipe: ``PyJWKClient.get_signing_key_from_jwt`` then ``jwt.decode``
    with ``algorithms=["RS256"]``, audience and issuer; ``defect`` breaks one thing."""
    import jwt  # type: ignore[import-not-found,unused-ignore]  # pip --target, not the venv

    client = jwt.PyJWKClient(jwks_url, ssl_context=ca_context(ca_file))
    options = {
        "none": {},
        "forbidden": {},
        "no_signature": {"verify_signature": False},
        "no_exp": {"verify_exp": False},
    }[defect]

    def verify(token: str) -> object:
        try:
            key = client.get_signing_key_from_jwt(token)
            return jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                audience=audience,
                issuer=issuer,
                options=options,
            )
        except jwt.PyJWTError as exc:
            raise Rejected(str(exc)) from exc

    return verify


def pyjwt_legacy_verifier(jwks_url: str, issuer: str, audience: str, ca_file: Path) -> Verify:
    """PyJWT 1.5.0 as it was used in 2017: the issuer's key as a PKCS#1 PEM and
    ``jwt.decode(token, key)`` without ``algorithms``, so the token's header picks the algorithm
    (CVE-2017-11424: 1.5.0 refuses an SPKI PEM as an HMAC secret, but not a PKCS#1 one).

    It runs with the cryptography of its time (36.0), whose ``verifier()`` it calls.
    """
    import base64
    import collections
    import collections.abc

    # 1.5.0 imports these ABCs from their pre-3.10 place; aliasing them changes no behaviour.
    for name in ("Mapping", "Iterable", "Callable", "Sequence"):
        setattr(collections, name, getattr(collections.abc, name))
    import jwt  # type: ignore[import-not-found,unused-ignore]  # pip --target, not the venv
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers

    def number(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    jwk = fetch_json(jwks_url, ca_file)["keys"][0]
    public = RSAPublicNumbers(number(jwk["e"]), number(jwk["n"])).public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)

    def verify(token: str) -> object:
        try:
            return jwt.decode(token, pem.decode(), audience=audience, issuer=issuer)
        # In 1.5.0 InvalidKeyError (e.g. 'alg: none' with a key) is not an InvalidTokenError.
        except (jwt.InvalidTokenError, jwt.exceptions.InvalidKeyError) as exc:
            raise Rejected(str(exc)) from exc

    return verify


def installed(*specs: str) -> tuple[Path | None, str]:
    """A directory holding ``specs`` (pip ``--target``, wheels only, no dependencies: what is not
    named comes from the venv), installed on first use; ``None`` and pip's error when pip cannot
    install it."""
    target = PIP_DIR / "+".join(spec.replace("==", "-") for spec in specs)
    if (target / ".complete").exists():
        return target, ""
    partial = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(partial)]
        + ["--disable-pip-version-check", "--only-binary=:all:", *specs],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        return None, done.stderr.strip()[-1000:]
    (partial / ".complete").touch()
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target, ""


@contextlib.contextmanager
def receiver_process(
    stack: str,
    *,
    site: Path,
    jwks_url: str,
    issuer: str,
    audience: str,
    certs_dir: Path,
    defect: str = "none",
    timeout: float = 60,
) -> Iterator[str]:
    """Run ``stack`` as a subprocess with ``site`` on its path; yields the webhook URL."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(REPO_ROOT)]))
    command = [sys.executable, "-m", "tests.interop.python_stacks", stack, "--defect", defect]
    command += ["--jwks-url", jwks_url, "--issuer", issuer, "--audience", audience]
    command += ["--certs-dir", str(certs_dir)]
    # stderr goes to a file: a pipe nobody reads fills up and blocks the receiver mid-request.
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            assert process.stdout is not None
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                ready = selector.select(timeout)
            line = process.stdout.readline() if ready else ""
            if not line:
                process.kill()
                process.wait(timeout=10)
                errors.seek(0)
                raise RuntimeError(f"{stack} receiver did not start: {errors.read()[-3000:]}")
            yield str(json.loads(line)["url"])
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()


def serve(app: Starlette, certs_dir: Path) -> None:
    """Serve ``app`` over HTTPS with the kit's leaf until stdin closes, printing the URL once
    it answers. Plain uvicorn: the kit itself is not imported next to an old cryptography."""
    import socket
    import threading
    import time

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        ssl_certfile=str(certs_dir / "server.pem"),
        ssl_keyfile=str(certs_dir / "server-key.pem"),
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit("the receiver did not start")
        time.sleep(0.05)
    port = sock.getsockname()[1]
    print(json.dumps({"url": f"https://127.0.0.1:{port}{WEBHOOK_PATH}"}), flush=True)
    sys.stdin.read()
    server.should_exit = True
    thread.join(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stack", choices=["pyjwt", "pyjwt-legacy"])
    parser.add_argument("--defect", choices=PYJWT_DEFECTS, default="none")
    parser.add_argument("--jwks-url", required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--certs-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    ca_file = args.certs_dir / "ca.pem"
    if args.stack == "pyjwt":
        verify = pyjwt_verifier(args.jwks_url, args.issuer, args.audience, ca_file, args.defect)
    else:
        verify = pyjwt_legacy_verifier(args.jwks_url, args.issuer, args.audience, ca_file)
    status = 403 if args.defect == "forbidden" else 401
    serve(webhook_app(verify, refusal_status=status), args.certs_dir)


if __name__ == "__main__":
    main()
