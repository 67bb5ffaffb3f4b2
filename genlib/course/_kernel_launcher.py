"""Start an IPython kernel under resource limits: the grading sandbox's kernel launcher.

Run as a script from a kernelspec that :func:`genlib.course.sandbox.write_kernelspec` writes. It
imports nothing from genlib (importing genlib imports torch: seconds), so it costs a bare
interpreter start. Three modes:

``launch`` (``--memory-mb ... -- -f CONNECTION_FILE``)
    Set the limits and replace this process with ``python -m ipykernel_launcher``.

``launch`` through a zygote (``--zygote SOCKET`` as well)
    Ask the zygote to fork a kernel, then stand in for it: this process forwards the signals
    Jupyter sends (interrupt, terminate) to the kernel, and exits when and as the kernel exits,
    so Jupyter sees an ordinary kernel process. If the zygote cannot be reached, fall back to
    the plain launch.

``serve`` (``--serve SOCKET ...``)
    The zygote: import ipykernel, numpy, torch and genlib once, then fork a kernel per request.
    A forked kernel starts in a fraction of a second instead of the seconds these imports take.
    The zygote runs no numerical code before forking (no thread pools exist to be lost in the
    fork). It ends when its standard input closes (the grading worker is gone).

Every kernel, however started,

- runs in its own session, with ``RLIMIT_AS`` (address space), ``RLIMIT_CPU`` (CPU seconds;
  SIGXCPU at the soft limit kills it), ``RLIMIT_FSIZE`` (largest file it may write; SIGXFSZ is
  ignored so an oversized write fails with an error instead), ``RLIMIT_NOFILE`` and no core
  dumps; its children inherit all of them;
- has ``HOME``, ``IPYTHONDIR``, ``MPLCONFIGDIR`` and ``TMPDIR`` in a private folder;
- writes its own stdout and stderr (not the notebook's outputs, which travel over ZeroMQ) to a
  log file, or to /dev/null.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import selectors
import signal
import socket
import sys
import tempfile

MIB = 1024 * 1024

#: Environment variables the grader sets per submission (read here, inherited by the kernel).
HOME_VARIABLE = "GENLIB_SANDBOX_HOME"
LOG_VARIABLE = "GENLIB_SANDBOX_LOG"
#: Signals Jupyter may send a kernel, forwarded by a stand-in to the forked kernel.
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
#: Modules the zygote imports before it forks kernels (failures are ignored).
PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "IPython.core.interactiveshell",
    "numpy",
    "torch",
    "genlib.testing",
)


# --------------------------------------------------------------------------- limits and environment


def set_limit(which: int, soft: int, hard: int | None = None) -> None:
    """Lower one resource limit; never raise it above what the process already has."""
    old_soft, old_hard = resource.getrlimit(which)
    hard = soft if hard is None else hard
    if old_hard != resource.RLIM_INFINITY:
        hard = min(hard, old_hard)
    soft = min(soft, hard)
    resource.setrlimit(which, (soft, hard))


def apply_limits(memory_mb: int, cpu_seconds: int, file_mb: int, open_files: int = 1024) -> None:
    """Apply the sandbox's resource limits to this process (and so to everything it starts)."""
    set_limit(resource.RLIMIT_AS, memory_mb * MIB)
    # SIGXCPU at the soft limit (kills the kernel: the grader reports it), SIGKILL 5 s later.
    set_limit(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 5)
    set_limit(resource.RLIMIT_FSIZE, file_mb * MIB)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write raises OSError instead
    set_limit(resource.RLIMIT_NOFILE, open_files)
    set_limit(resource.RLIMIT_CORE, 0)


def private_home() -> str:
    """The kernel's HOME: the folder the grader named, or a fresh temporary one."""
    home = os.environ.get(HOME_VARIABLE)
    if home:
        os.makedirs(home, exist_ok=True)
        return home
    return tempfile.mkdtemp(prefix="genlib-kernel-home-")


def prepare_kernel_process(limits: dict[str, int]) -> None:
    """Everything a kernel process does before it starts: home, output, limits."""
    home = private_home()
    for name in ("HOME", "IPYTHONDIR", "MPLCONFIGDIR", "TMPDIR"):
        os.environ[name] = home if name == "HOME" else os.path.join(home, name.lower())
        os.makedirs(os.environ[name], exist_ok=True)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    target = os.open(
        os.environ.get(LOG_VARIABLE) or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600
    )
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
    apply_limits(**limits)


# --------------------------------------------------------------------------- launching


def _limits(args: argparse.Namespace) -> dict[str, int]:
    return {
        "memory_mb": args.memory_mb,
        "cpu_seconds": args.cpu_seconds,
        "file_mb": args.file_mb,
        "open_files": args.open_files,
    }


def launch_direct(limits: dict[str, int], kernel_args: list[str]) -> None:
    """Replace this process with an ipykernel under the limits."""
    prepare_kernel_process(limits)
    os.execv(sys.executable, [sys.executable, "-m", "ipykernel_launcher", *kernel_args])


def _receive(sock: socket.socket) -> dict | None:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            return None
        data += chunk
    return json.loads(data)


def launch_via_zygote(path: str, limits: dict[str, int], kernel_args: list[str]) -> bool:
    """Have the zygote at ``path`` fork the kernel and stand in for it; False if unreachable."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(path)
        request = {"args": kernel_args, "cwd": os.getcwd(), "env": dict(os.environ), "limits": limits}
        sock.sendall(json.dumps(request).encode() + b"\n")
        reply = _receive(sock)
    except OSError:
        return False
    if not reply or "pid" not in reply:
        return False
    pid = int(reply["pid"])

    def forward(signum: int, frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in FORWARDED:
        signal.signal(signum, forward)
    sock.settimeout(None)
    try:
        message = _receive(sock)
    except OSError:
        message = None
    code = int(message["exit"]) if message and "exit" in message else 1
    if message is None:  # the zygote is gone: make sure the kernel is too
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
    if code < 0:  # end the way the kernel ended, so Jupyter reads the same status
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code if code >= 0 else 1)


# --------------------------------------------------------------------------- the zygote


def _preload() -> None:
    import importlib
    import pkgutil

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    try:  # genlib's modules, as genlib.testing imports them on first use (not its tooling)
        import genlib

        for info in pkgutil.walk_packages(genlib.__path__, "genlib.", onerror=lambda name: None):
            if not info.name.startswith("genlib.course"):
                try:
                    importlib.import_module(info.name)
                except Exception:
                    pass
    except Exception:
        pass


def _kernel_child(request: dict, keep_out: list[int]) -> None:
    """In the forked child: become the kernel (never returns)."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)  # the zygote's; its pipe is closed below
        for fd in keep_out:
            try:
                os.close(fd)
            except OSError:
                pass
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ["JPY_PARENT_PID"] = str(os.getppid())
        os.chdir(request["cwd"])
        prepare_kernel_process(request["limits"])
        import random

        random.seed()
        try:
            import numpy

            numpy.random.seed()  # noqa: NPY002 -- the legacy global state is what needs reseeding
        except Exception:
            pass
        from ipykernel.kernelapp import IPKernelApp

        sys.argv = ["ipykernel_launcher", *request["args"]]
        IPKernelApp.launch_instance(argv=request["args"])
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 0
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def serve(path: str) -> None:
    """Run the zygote on the Unix socket ``path`` until standard input closes.

    If importing started a thread (a thread pool would be lost in every fork), it does not serve:
    kernels then start the ordinary way.
    """
    _preload()
    if os.path.isdir("/proc/self/task") and len(os.listdir("/proc/self/task")) > 1:
        return
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(path):
        os.unlink(path)
    server.bind(path)
    os.chmod(path, 0o600)
    server.listen(16)
    selector = selectors.DefaultSelector()
    selector.register(server, selectors.EVENT_READ, "accept")
    selector.register(sys.stdin, selectors.EVENT_READ, "stdin")
    kernels: dict[int, socket.socket] = {}  # pid -> the stand-in's connection
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    selector.register(wake_r, selectors.EVENT_READ, "child")

    def reap() -> None:
        while kernels:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = kernels.pop(pid, None)
            try:
                os.killpg(pid, signal.SIGKILL)  # whatever the kernel left running
            except OSError:
                pass
            if conn is not None:
                try:
                    conn.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
                except OSError:
                    pass
                selector.unregister(conn)
                conn.close()

    try:
        while True:
            for key, _ in selector.select(timeout=1.0):
                if key.data == "stdin":
                    if not os.read(sys.stdin.fileno(), 4096):
                        return
                elif key.data == "child":
                    os.read(wake_r, 4096)
                elif key.data == "accept":
                    conn, _ = server.accept()
                    conn.settimeout(10)
                    try:
                        request = _receive(conn)
                    except OSError:
                        request = None
                    if not request:
                        conn.close()
                        continue
                    keep_out = [server.fileno(), wake_r, wake_w, sys.stdin.fileno(), selector_fd(selector)]
                    keep_out += [c.fileno() for c in kernels.values()]
                    pid = os.fork()
                    if pid == 0:
                        keep_out.append(conn.fileno())
                        _kernel_child(request, keep_out)
                    conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
                    conn.settimeout(None)
                    kernels[pid] = conn
                    selector.register(conn, selectors.EVENT_READ, pid)
                else:  # a stand-in closed its connection: it died, so must its kernel
                    pid = key.data
                    conn = key.fileobj
                    if not conn.recv(4096):
                        try:
                            os.killpg(pid, signal.SIGKILL)
                        except OSError:
                            pass
            reap()
    finally:
        for pid in list(kernels):
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        server.close()
        try:
            os.unlink(path)
        except OSError:
            pass


def selector_fd(selector: selectors.BaseSelector) -> int:
    """The selector's own descriptor (epoll), closed in forked kernels."""
    fileno = getattr(selector, "fileno", None)
    return fileno() if fileno else -1


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", metavar="SOCKET", help="run the zygote on this socket")
    parser.add_argument("--zygote", metavar="SOCKET", help="start the kernel through this zygote")
    parser.add_argument("--memory-mb", type=int, default=4096)
    parser.add_argument("--cpu-seconds", type=int, default=600)
    parser.add_argument("--file-mb", type=int, default=64)
    parser.add_argument("--open-files", type=int, default=1024)
    parser.add_argument("kernel_args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return
    kernel_args = args.kernel_args[1:] if args.kernel_args[:1] == ["--"] else args.kernel_args
    limits = _limits(args)
    if args.zygote and os.path.exists(args.zygote):
        launch_via_zygote(args.zygote, limits, kernel_args)
    launch_direct(limits, kernel_args)


if __name__ == "__main__":
    main()
