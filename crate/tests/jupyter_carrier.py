"""The extension's part of direct mode, played against a real Jupyter server (crate/tests/bridge.rs).

Run by a JupyterLab venv's Python: starts `jupyter server` on a free loopback port with a token,
creates a kernel over REST, runs the rendered attach client in it (an execute_request over the
kernel's WebSocket), then listens on a Unix socket. Each connection there is one link leg, as
the content script makes them: a new kernel WebSocket opened WITHOUT a subprotocol (so the
server speaks the legacy binary framing), a new comm_open for the attach client's target, and
bytes both ways as comm_msg buffers. The connection closing cuts the WebSocket; a comm the kernel
closes ends the connection (its data, a line in `comm-closes.jsonl`). Every `--rerun-every` legs the attach code runs again first (it must
replace its registration). Prints `ready <attach output>` when serving; ends when stdin closes.
"""

import argparse
import asyncio
import datetime
import json
import os
import socket
import struct
import subprocess
import sys
import time
import uuid

from tornado import httpclient, websocket
from tornado.iostream import StreamClosedError
from tornado.netutil import bind_unix_socket
from tornado.tcpserver import TCPServer

CHUNK = 256 * 1024


def pack(msg, buffers):
    """The legacy binary WebSocket message: count n, n offsets, the JSON part, the buffers."""
    parts = [json.dumps(msg).encode("utf-8")] + [bytes(b) for b in buffers]
    n = len(parts)
    offsets = [4 * (n + 1)]
    for part in parts[:-1]:
        offsets.append(offsets[-1] + len(part))
    return struct.pack("!%dI" % (n + 1), n, *offsets) + b"".join(parts)


def unpack(data):
    if isinstance(data, str):
        msg = json.loads(data)
        msg["buffers"] = []
        return msg
    (n,) = struct.unpack_from("!I", data)
    offsets = list(struct.unpack_from("!%dI" % n, data, 4)) + [len(data)]
    assert offsets[0] == 4 * (n + 1), offsets
    parts = [data[offsets[i]:offsets[i + 1]] for i in range(n)]
    msg = json.loads(parts[0].decode("utf-8"))
    msg["buffers"] = parts[1:]
    return msg


def message(session, msg_type, content):
    return {
        "header": {"msg_id": uuid.uuid4().hex, "username": "test", "session": session,
                   "msg_type": msg_type, "version": "5.3",
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat()},
        "parent_header": {}, "metadata": {}, "content": content, "channel": "shell",
    }


class Jupyter(object):
    def __init__(self, venv, work):
        self.token = uuid.uuid4().hex
        self.work = work
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = dict(os.environ)
        for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
            env[name] = os.path.join(work, name.lower())
        self.log = open(os.path.join(work, "jupyter.log"), "wb")
        self.process = subprocess.Popen(
            [os.path.join(venv, "bin", "jupyter"), "server", "--no-browser", "--allow-root",
             "--ip=127.0.0.1", "--port=%d" % self.port, "--ServerApp.port_retries=0",
             "--IdentityProvider.token=" + self.token, "--ServerApp.token=" + self.token,
             "--ServerApp.root_dir=" + work],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.base = "http://127.0.0.1:%d" % self.port
        self.http = httpclient.AsyncHTTPClient()

    def headers(self):
        return {"Authorization": "token " + self.token}

    async def request(self, method, path, body=None):
        response = await self.http.fetch(self.base + path, method=method, headers=self.headers(),
                                         body=body, allow_nonstandard_methods=True)
        return json.loads(response.body) if response.body else None

    async def wait_ready(self):
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise SystemExit("jupyter server exited with %s" % self.process.returncode)
            try:
                return await self.request("GET", "/api/status")
            except (OSError, httpclient.HTTPError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def channels(self, kernel):
        url = "ws://127.0.0.1:%d/api/kernels/%s/channels?session_id=%s" % (self.port, kernel, uuid.uuid4().hex)
        # No subprotocol: the legacy framing, which every jupyter_server speaks.
        return await websocket.websocket_connect(
            httpclient.HTTPRequest(url, headers=self.headers()), max_message_size=64 * 1024 * 1024)

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def execute(ws, session, code):
    """Runs `code`; its stdout, or SystemExit with the error. Done at the execute_reply (shell)
    and the status idle (iopub, after every output): the two channels keep no common order."""
    request = message(session, "execute_request", {"code": code, "silent": False, "store_history": False,
                                                   "user_expressions": {}, "allow_stdin": False})
    await ws.write_message(json.dumps(request))
    out = []
    replied = idle = False
    while not (replied and idle):
        raw = await asyncio.wait_for(ws.read_message(), 60)
        if raw is None:
            raise SystemExit("the kernel WebSocket closed during execute")
        msg = unpack(raw)
        if msg.get("parent_header", {}).get("msg_id") != request["header"]["msg_id"]:
            continue
        kind = msg["header"]["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "status":
            idle = msg["content"]["execution_state"] == "idle"
        elif kind == "error":
            raise SystemExit("the attach code failed: %s" % "\n".join(msg["content"]["traceback"]))
        elif kind == "execute_reply":
            if msg["content"]["status"] != "ok":
                raise SystemExit("execute_reply: %s" % msg["content"])
            replied = True
    return "".join(out)


class Carrier(TCPServer):
    def __init__(self, jupyter, kernel, attach_code, target, rerun_every):
        TCPServer.__init__(self)
        self.jupyter = jupyter
        self.kernel = kernel
        self.attach_code = attach_code
        self.target = target
        self.rerun_every = rerun_every
        self.legs = 0

    async def handle_stream(self, stream, address):
        self.legs += 1
        session = uuid.uuid4().hex
        ws = await self.jupyter.channels(self.kernel)
        if self.rerun_every and self.legs % self.rerun_every == 0:
            await execute(ws, session, self.attach_code)
        comm_id = uuid.uuid4().hex
        open_msg = message(session, "comm_open", {"comm_id": comm_id, "target_name": self.target, "data": {}})
        await ws.write_message(json.dumps(open_msg))

        async def up():
            try:
                while True:
                    data = await stream.read_bytes(CHUNK, partial=True)
                    msg = message(session, "comm_msg", {"comm_id": comm_id, "data": {}})
                    await ws.write_message(pack(msg, [data]), binary=True)
            except (StreamClosedError, websocket.WebSocketClosedError):
                pass

        async def down():
            while True:
                raw = await ws.read_message()
                if raw is None:
                    return
                msg = unpack(raw)
                content = msg.get("content", {})
                if content.get("comm_id") != comm_id:
                    continue
                kind = msg["header"]["msg_type"]
                if kind == "comm_msg":
                    for buf in msg["buffers"]:
                        await stream.write(buf)
                elif kind == "comm_close":
                    # For the test to read: what the kernel said when it closed the comm.
                    with open(os.path.join(self.jupyter.work, "comm-closes.jsonl"), "a") as f:
                        f.write(json.dumps(content.get("data")) + "\n")
                    return

        tasks = [asyncio.ensure_future(up()), asyncio.ensure_future(down())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except StreamClosedError:
            pass
        for task in tasks:
            task.cancel()
        # The leg drops as a cut WebSocket does: no comm_close from the front.
        ws.close()
        stream.close()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--venv", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--attach", required=True, help="the rendered attach code")
    parser.add_argument("--target", required=True)
    parser.add_argument("--listen", required=True)
    parser.add_argument("--rerun-every", type=int, default=0)
    parser.add_argument("--kernel-python", help="run the kernel with this Python (its own ipykernel)")
    args = parser.parse_args()
    kernel_name = "python3"
    if args.kernel_python:
        kernel_name = "aistudio-ssh-test"
        spec_dir = os.path.join(args.work, "jupyter_data_dir", "kernels", kernel_name)
        os.makedirs(spec_dir)
        with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
            json.dump({"argv": [args.kernel_python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                       "display_name": kernel_name, "language": "python"}, f)
    jupyter = Jupyter(args.venv, args.work)
    try:
        status = await jupyter.wait_ready()
        assert "started" in status, status
        kernel = (await jupyter.request("POST", "/api/kernels", body=json.dumps({"name": kernel_name})))["id"]
        with open(args.attach) as f:
            code = f.read()
        ws = await jupyter.channels(kernel)
        printed = await execute(ws, uuid.uuid4().hex, code)
        # The second run replaces the first.
        printed += await execute(ws, uuid.uuid4().hex, code)
        ws.close()
        carrier = Carrier(jupyter, kernel, code, args.target, args.rerun_every)
        carrier.add_socket(bind_unix_socket(args.listen))
        print("ready " + json.dumps(printed), flush=True)
        loop = asyncio.get_event_loop()
        await loop.run_in_executor(None, sys.stdin.read)
    finally:
        jupyter.stop()


if __name__ == "__main__":
    asyncio.run(main())
