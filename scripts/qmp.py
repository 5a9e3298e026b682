"""A small QMP client and snapvm launcher, Python standard library only.

QMPClient speaks QEMU's wire protocol (one JSON object per line, the
greeting, qmp_capabilities, "execute"/"arguments"/"id", events with
timestamps) over a Unix socket.  SnapVM starts one snapvm process and
guarantees that it is stopped again: use it as a context manager, and on
every way out the process it started is ended by its pid.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


class QMPError(Exception):
    """A command answered with "error", or the conversation broke."""

    def __init__(self, message, error_class=None):
        super().__init__(message)
        self.error_class = error_class


class QMPClient:
    def __init__(self, path, timeout=10.0, trace=None):
        """Connect to the QMP socket at @path and negotiate capabilities.

        @trace, if given, is called with ("->", obj) and ("<-", obj) for
        every message, so a demo can show the conversation.
        """
        self.trace = trace
        self.events = []
        self.next_id = 1
        self.timeout = timeout
        self.buf = b""
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.greeting = self._read_message()
        if "QMP" not in self.greeting:
            raise QMPError("no QMP greeting: %r" % (self.greeting,))
        self.command("qmp_capabilities")

    def close(self):
        self.sock.close()

    def _read_message(self):
        # Buffered here rather than by a socket file, which is unusable
        # after one timeout: wait_event() may time out and go on.
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise QMPError("snapvm closed the QMP connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        msg = json.loads(line)
        if self.trace:
            self.trace("<-", msg)
        return msg

    def _send(self, obj):
        if self.trace:
            self.trace("->", obj)
        self.sock.sendall(json.dumps(obj).encode() + b"\n")

    def execute(self, name, **arguments):
        """Send a command and return its whole reply ("return" or "error")."""
        cmd = {"execute": name, "id": self.next_id}
        self.next_id += 1
        if arguments:
            cmd["arguments"] = arguments
        self._send(cmd)
        while True:
            msg = self._read_message()
            if "event" in msg:
                self.events.append(msg)
                continue
            if msg.get("id") != cmd["id"]:
                raise QMPError("reply for id %r while waiting for %r: %r"
                               % (msg.get("id"), cmd["id"], msg))
            return msg

    def command(self, name, **arguments):
        """Send a command and return its "return" value; raise on "error"."""
        reply = self.execute(name, **arguments)
        if "error" in reply:
            err = reply["error"]
            raise QMPError("%s: %s" % (name, err.get("desc")),
                           err.get("class"))
        return reply["return"]

    def wait_event(self, name, timeout=10.0):
        """Return the first event called @name, waiting up to @timeout s."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError("no %s event within %.0f s" % (name, timeout))
            self.sock.settimeout(left)
            try:
                msg = self._read_message()
            except socket.timeout:
                continue            # the deadline check above raises
            finally:
                self.sock.settimeout(self.timeout)
            if "event" in msg:
                self.events.append(msg)


class SnapVM:
    """One snapvm process with a QMP socket and its serial port in a file.

        with SnapVM(binary, ["-kernel", elf, "-m", "128M"]) as vm:
            vm.qmp.command("query-status")

    Leaving the block ends the process (SIGTERM, then SIGKILL) if it still
    runs, and removes the temporary directory unless @keep_dir.  @tmp_parent
    chooses where that directory (QMP socket, serial log) is made.
    @qmp_timeout: seconds a command's reply may take (a pmemsave of
    gigabytes takes several).
    """

    def __init__(self, binary, args, trace=None, keep_dir=False,
                 start_timeout=10.0, tmp_parent=None, qmp_timeout=10.0):
        self.binary = binary
        self.args = list(args)
        self.trace = trace
        self.keep_dir = keep_dir
        self.start_timeout = start_timeout
        self.qmp_timeout = qmp_timeout
        self.dir = tempfile.mkdtemp(prefix="snapvm-", dir=tmp_parent)
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.serial_path = os.path.join(self.dir, "serial.log")
        self.proc = None
        self.qmp = None

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    @property
    def command_line(self):
        return [self.binary] + self.args + [
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
            "-serial", "file:%s" % self.serial_path,
        ]

    def start(self):
        self.proc = subprocess.Popen(self.command_line,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("snapvm exited with status %d at start-up"
                                   % self.proc.returncode)
            if os.path.exists(self.qmp_path):
                try:
                    self.qmp = QMPClient(self.qmp_path, trace=self.trace,
                                         timeout=self.qmp_timeout)
                    return
                except (ConnectionRefusedError, FileNotFoundError):
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("no QMP socket at %s after %.0f s"
                                   % (self.qmp_path, self.start_timeout))
            time.sleep(0.05)

    def serial_output(self):
        try:
            with open(self.serial_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def wait_exit(self, timeout=10.0):
        """Wait for the process to end by itself; return its exit status."""
        return self.proc.wait(timeout=timeout)

    def stop(self):
        """End the process we started, by its pid, whatever state it is in."""
        if self.qmp:
            try:
                self.qmp.close()
            except OSError:
                pass
            self.qmp = None
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if not self.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
