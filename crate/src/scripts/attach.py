"""AI Studio SSH: the attach client of direct mode, run as a cell in the extension's own kernel.

It carries the stream protocol's bytes between a Jupyter comm (target `comm_target`) and the
container bridge (bridge.py) listening on the Unix socket `bridge_socket`: each comm message
from the front holds bytes in its first buffer, written to the socket as they are; what the
bridge sends comes back as comm messages with one buffer each. The bridge runs outside the
kernel, so a kernel restart ends only this client; the front opens a new comm, whose new
connection to the bridge resumes the link (its first bytes are the helper's Hello).

Run it again at will: the new registration replaces the old one and closes its connection.
One connection per kernel: a new comm_open closes the one before. A comm closed from here says
why in its data: `{"error": reason}`.

The values (`bridge_socket`, `comm_target`) are assigned after this docstring when rendered.
Python 3.7 standard library and IPython (ipykernel 4 to 7) only.
"""
import os
import select
import socket
import stat
import threading
import time

from IPython import get_ipython

# The most bytes one comm message carries (the stream protocol's largest Data payload).
_CHUNK = 256 * 1024
# At least this long between two messages to the front: jupyter_server drops iopub messages
# past `iopub_msg_rate_limit` (1000/s averaged over 3 s by default) without a word; 400/s
# leaves room for the kernel's own.
_INTERVAL = 0.0025


class _Connection(object):
    """One comm and its connection to the bridge; the reader thread sends what the bridge says."""

    def __init__(self, comm, sock):
        self.comm = comm
        self.sock = sock
        self.closed = False
        self.lock = threading.Lock()

    def start(self):
        self.comm.on_msg(self.on_msg)
        self.comm.on_close(lambda msg: self.close(None))
        thread = threading.Thread(target=self.read, name="aistudio-ssh attach")
        thread.daemon = True
        thread.start()

    def on_msg(self, msg):
        for buf in msg.get("buffers") or []:
            # A zmq Frame (old kernels) holds its bytes in .buffer; memoryview and bytes as is.
            buf = getattr(buf, "buffer", buf)
            try:
                self.sock.sendall(buf)
            except OSError as error:
                return self.close("bridge write failed: %s" % error)

    def read(self):
        last = 0.0
        reason = "bridge closed"
        eof = False
        try:
            while not eof:
                chunk = self.sock.recv(_CHUNK)
                if not chunk:
                    break
                wait = last + _INTERVAL - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                # What came meanwhile goes in the same message.
                parts, size = [chunk], len(chunk)
                while size < _CHUNK and select.select([self.sock], [], [], 0)[0]:
                    more = self.sock.recv(_CHUNK - size)
                    if not more:
                        eof = True
                        break
                    parts.append(more)
                    size += len(more)
                self.comm.send(data={}, buffers=[b"".join(parts)])
                last = time.monotonic()
        except Exception as error:  # whatever it was, both sides end
            if not self.closed:
                reason = "bridge closed: %s" % error
        self.close(reason)

    def close(self, reason):
        """Ends both sides; `reason` None when the front closed the comm."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        if reason is not None:
            try:
                self.comm.close(data={"error": reason})
            except Exception:  # a kernel shutting down: nothing to tell
                pass


class _Attach(object):
    """The registered comm target: one live connection at a time."""

    def __init__(self, path):
        self.path = path
        self.current = None

    def open(self, comm, msg):
        self.close_current("replaced by a newer connection")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as error:
            sock.close()
            return comm.close(data={"error": "cannot reach the bridge at %s: %s" % (self.path, error)})
        self.current = _Connection(comm, sock)
        self.current.start()

    def close_current(self, reason):
        if self.current is not None:
            self.current.close(reason)
            self.current = None


def _quiet_comm_status(kernel):
    """No busy/idle around the carrier's comm_msg: the server would write that status right
    before the bytes it answers with, and the small write ahead holds the bytes back (Nagle's
    algorithm waits for the browser's delayed ACK): tens of ms per keystroke. This kernel is
    the extension's own; nobody watches its status."""
    publish = getattr(kernel, "_publish_status", None)
    if publish is None or getattr(publish, "_aistudio_ssh", False):
        return

    def quiet(status, *args, **kwargs):
        parent = kwargs.get("parent")
        if parent is None:
            get_parent = getattr(kernel, "get_parent", None)
            try:
                parent = get_parent(args[0] if args else "shell") if get_parent else None
            except Exception:  # an ipykernel whose get_parent differs: publish as always
                parent = None
        header = (parent or {}).get("header") or {}
        content = (parent or {}).get("content") or {}
        attach = getattr(kernel, "_aistudio_ssh_attach", None)
        current = attach.current if attach is not None else None
        if (header.get("msg_type") == "comm_msg" and current is not None
                and content.get("comm_id") == getattr(current.comm, "comm_id", None)):
            return None
        return publish(status, *args, **kwargs)

    quiet._aistudio_ssh = True
    kernel._publish_status = quiet


def _register(path, target):
    kernel = get_ipython().kernel
    _quiet_comm_status(kernel)
    old = getattr(kernel, "_aistudio_ssh_attach", None)
    if old is not None:
        old.close_current("replaced by a newer attach client")
    attach = _Attach(path)
    kernel._aistudio_ssh_attach = attach
    kernel.comm_manager.register_target(target, attach.open)
    try:
        state = "bridge at %s" % path if stat.S_ISSOCK(os.stat(path).st_mode) else "%s is not a socket" % path
    except OSError:
        state = "no bridge at %s yet" % path
    print("aistudio-ssh: attach client ready on comm target %s (%s)" % (target, state))


_register(bridge_socket, comm_target)
