"""Talk to the box's Jupyter the way a browser or a notebook does (test code for run.sh).

Runs with the image venv's Python (tornado and jupyter_client come with
JupyterLab), as root on the node inside the pod's network namespace.

    jupyter_probe.py terminal URL TOKEN HOST
        opens a Jupyter terminal over its websocket, with the Host and Origin
        a browser on the tailnet sends, runs `echo "PATH=[$PATH]"` in it and
        prints the PATH
    jupyter_probe.py kernel-ws URL TOKEN HOST KERNEL_ID
        connects to a kernel's websocket the same way and prints the reply
        to a kernel_info_request (implementation and language version)
    jupyter_probe.py kernel-exec CONNECTION_FILE CODE
        runs CODE in a kernel through its connection file, as a notebook
        cell, and prints its output; exits 1 if the cell failed
"""

import json
import re
import sys
import uuid


def ws_request(url, token, host, path):
    from tornado.httpclient import HTTPRequest

    ws_url = url.replace("http://", "ws://", 1).rstrip("/") + path
    return HTTPRequest(ws_url, headers={"Host": host, "Origin": f"http://{host}", "Authorization": f"token {token}"}, request_timeout=30)


def http(url, token, host, method, path, body=None):
    from tornado.httpclient import HTTPClient, HTTPRequest

    req = HTTPRequest(
        url.rstrip("/") + path,
        method=method,
        body=body,
        headers={"Host": host, "Authorization": f"token {token}", "Content-Type": "application/json"},
        request_timeout=30,
    )
    resp = HTTPClient().fetch(req, raise_error=True)
    return json.loads(resp.body) if resp.body else None


def terminal(url, token, host):
    from tornado.ioloop import IOLoop
    from tornado.websocket import websocket_connect

    name = http(url, token, host, "POST", "/api/terminals", body="{}")["name"]

    async def run():
        ws = await websocket_connect(ws_request(url, token, host, f"/terminals/websocket/{name}"))
        ws.write_message(json.dumps(["stdin", 'echo "PATH=[$PATH]"\r']))
        seen = ""
        while True:
            msg = await ws.read_message()
            if msg is None:
                raise SystemExit(f"terminal closed; output: {seen!r}")
            kind, *rest = json.loads(msg)
            if kind == "stdout":
                seen += rest[0]
                m = re.search(r"PATH=\[([^]$]*)\]", seen)
                if m:
                    ws.close()
                    return m.group(1)

    try:
        print(IOLoop.current().run_sync(run, timeout=30))
    finally:
        http(url, token, host, "DELETE", f"/api/terminals/{name}")


def kernel_ws(url, token, host, kernel_id):
    from tornado.ioloop import IOLoop
    from tornado.websocket import websocket_connect

    async def run():
        ws = await websocket_connect(ws_request(url, token, host, f"/api/kernels/{kernel_id}/channels"))
        msg_id, session = uuid.uuid4().hex, uuid.uuid4().hex
        ws.write_message(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": "",
                        "session": session,
                        "msg_type": "kernel_info_request",
                        "version": "5.3",
                        "date": "",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {},
                    "channel": "shell",
                }
            )
        )
        while True:
            msg = await ws.read_message()
            if msg is None:
                raise SystemExit("the kernel websocket closed")
            msg = json.loads(msg)
            if msg.get("msg_type") == "kernel_info_reply" and msg["parent_header"].get("msg_id") == msg_id:
                ws.close()
                c = msg["content"]
                return f"{c['implementation']} {c['language_info']['name']} {c['language_info']['version']}"

    print(IOLoop.current().run_sync(run, timeout=60))


def kernel_exec(connection_file, code):
    from jupyter_client import BlockingKernelClient

    kc = BlockingKernelClient(connection_file=connection_file)
    kc.load_connection_file()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    out = []

    def hook(msg):
        c = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(c["text"])
        elif msg["msg_type"] == "error":
            out.append(f"{c['ename']}: {c['evalue']}\n")
        elif msg["msg_type"] in ("execute_result", "display_data"):
            out.append(c["data"].get("text/plain", "") + "\n")

    reply = kc.execute_interactive(code, timeout=120, output_hook=hook)
    kc.stop_channels()
    sys.stdout.write("".join(out))
    return 0 if reply["content"]["status"] == "ok" else 1


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "terminal":
        terminal(*args)
    elif cmd == "kernel-ws":
        kernel_ws(*args)
    elif cmd == "kernel-exec":
        return kernel_exec(*args)
    else:
        sys.exit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
