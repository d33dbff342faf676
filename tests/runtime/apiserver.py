#!/usr/bin/python3
"""A stand-in for the Kubernetes API server, for the idle stopper (idle-stop.sh) in tests/runtime/run.sh.

    apiserver.py --dir DIR --token-file FILE [--forbid N] [--user USER]

Makes a throwaway CA and a certificate for 127.0.0.1 with openssl (DIR/ca.crt
is what the client trusts), serves HTTPS on a free port of 127.0.0.1 (written
to DIR/port once it listens) until SIGTERM, and records every request, one
JSON object per line, in DIR/requests.jsonl: method, path, query (parsed),
headers (a list of [name, value]: a repeated header shows), body.

It answers as kube-apiserver does for the one resource it knows, a
StatefulSet's scale subresource (PATCH and GET
/apis/apps/v1/namespaces/NS/statefulsets/NAME/scale): a Scale object
(autoscaling/v1) with a merge patch's spec.replicas applied, or a Status
object for an error, with the API server's own reasons and messages:
401 for a bearer token other than FILE's content (read at every request, so
a client that does not re-read a rotated token fails), 415 for a Content-Type
that is not a patch type, 400 for a body that is not JSON, 404 for any other
path, and 403 (Forbidden, as RBAC would refuse USER) for the first N PATCHes.
"""

import argparse
import http.server
import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.parse

SCALE_PATH = ("", "apis", "apps", "v1", "namespaces", None, "statefulsets", None, "scale")
# What the API server accepts for a PATCH (k8s.io/apiserver, handlers/patch.go).
PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def make_certs(d):
    def openssl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as f:
        f.write(
            "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
        )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt", "-days", "1", "-subj", "/CN=devbox-runtime-test-ca",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    openssl("req", *ec, "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr", "-subj", "/CN=kube-apiserver")
    openssl("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key", "-CAcreateserial",
            "-out", f"{d}/server.crt", "-days", "1", "-extfile", ext)  # fmt: skip


def status(code, reason, message, details=None):
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}
    if details:
        body["details"] = details
    return code, body


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "devbox-runtime-apiserver"

    def log_message(self, fmt, *args):  # requests are recorded in requests.jsonl instead
        pass

    def do_GET(self):
        self.handle_request()

    def do_PATCH(self):
        self.handle_request()

    def do_PUT(self):
        self.handle_request()

    def do_POST(self):
        self.handle_request()

    def handle_request(self):
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urllib.parse.urlsplit(self.path)
        record = {
            "method": self.command,
            "path": url.path,
            "query": urllib.parse.parse_qs(url.query),
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
        }
        with open(srv.requests, "a") as f:
            f.write(json.dumps(record) + "\n")
        code, reply = self.answer(record, body)
        data = json.dumps(reply).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def answer(self, record, body):
        srv = self.server
        with open(srv.token_file) as f:
            token = f.read().strip()
        if self.headers.get("Authorization") != f"Bearer {token}":
            return status(401, "Unauthorized", "Unauthorized")
        parts = record["path"].split("/")
        if len(parts) != len(SCALE_PATH) or any(want is not None and got != want for got, want in zip(parts, SCALE_PATH)):
            return status(404, "NotFound", "the server could not find the requested resource")
        namespace, name = parts[5], parts[7]
        if self.command not in ("GET", "PATCH"):
            return status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if self.command == "PATCH":
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype not in PATCH_TYPES:
                return status(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: {', '.join(PATCH_TYPES)}",
                )
            if srv.forbid > 0:
                srv.forbid -= 1
                return status(
                    403,
                    "Forbidden",
                    f'statefulsets.apps "{name}" is forbidden: User "{srv.user}" cannot patch resource "statefulsets/scale" '
                    f'in API group "apps" in the namespace "{namespace}"',
                    {"name": name, "group": "apps", "kind": "statefulsets"},
                )
            try:
                patch = json.loads(body)
            except ValueError as e:
                return status(400, "BadRequest", f"error decoding patch: {e}")
            replicas = (patch.get("spec") or {}).get("replicas") if isinstance(patch, dict) else None
            if isinstance(replicas, int):
                srv.replicas = replicas
        srv.generation += 1
        return 200, {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": "5b1d7c52-3f5e-4c8e-9a0e-6c1d2f3e4a5b",
                "resourceVersion": str(1000 + srv.generation),
                "creationTimestamp": "2024-01-01T00:00:00Z",
            },
            "spec": {"replicas": srv.replicas},
            "status": {"replicas": 1, "selector": f"app.kubernetes.io/instance={name}"},
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--forbid", type=int, default=0, help="answer the first N PATCHes with 403 Forbidden")
    ap.add_argument("--user", default="system:serviceaccount:default:default", help="the user named in a 403")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    make_certs(args.dir)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(args.dir, "server.crt"), os.path.join(args.dir, "server.key"))
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.requests = os.path.join(args.dir, "requests.jsonl")
    srv.token_file = args.token_file
    srv.forbid = args.forbid
    srv.user = args.user
    srv.replicas = 1
    srv.generation = 0
    open(srv.requests, "w").close()
    with open(os.path.join(args.dir, "port.tmp"), "w") as f:
        f.write(str(srv.server_address[1]))
    os.replace(os.path.join(args.dir, "port.tmp"), os.path.join(args.dir, "port"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv.serve_forever()


if __name__ == "__main__":
    main()
