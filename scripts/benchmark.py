"""Execute each notebook in a fresh kernel; print wall time and peak kernel memory.

    python3 course.py bench                          # every notebook in notebooks/
    python3 course.py bench notebooks/01_*.ipynb     # some of them
    python3 course.py bench --save                   # also write the executed notebooks back

Peak memory is the kernel process's peak resident set size (VmHWM on Linux, else the
largest RSS seen by sampling every 50 ms), read just before the kernel shuts down.
This is a benchmark, not a test: it never fails because a notebook is slow.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import psutil
from nbclient import NotebookClient
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_linux(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class _Sampler(threading.Thread):
    """Fallback peak-RSS sampler for systems without /proc."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self.stop.wait(0.05)


def run_notebook(path: Path, save: bool = False, timeout: int = 900) -> tuple[float, int]:
    """Execute ``path`` top to bottom in a new kernel; return (seconds, peak bytes)."""
    with tempfile.TemporaryDirectory() as sockets:
        return _run(path, sockets, save, timeout)


def notebook_client(nb: nbformat.NotebookNode, path: Path, sockets: str, timeout: int,
                    allow_errors: bool = False) -> NotebookClient:
    """A client that runs ``nb`` (read from ``path``) in a fresh python3 kernel, in the notebook's
    folder, talking over local sockets in the folder ``sockets`` (not TCP) where the OS allows."""
    config = Config()
    if os.name != "nt":  # local sockets (absolute path): no "running over TCP without encryption" warning
        config.KernelManager.transport, config.KernelManager.ip = "ipc", str(Path(sockets) / "kernel")
    return NotebookClient(nb, timeout=timeout, kernel_name="python3", config=config, allow_errors=allow_errors,
                          resources={"metadata": {"path": str(path.parent)}})


def _run(path: Path, sockets: str, save: bool, timeout: int) -> tuple[float, int]:
    nb = nbformat.read(path, as_version=4)
    client = notebook_client(nb, path, sockets, timeout)
    start = time.perf_counter()
    with client.setup_kernel():
        pid = client.km.provisioner.pid
        sampler = _Sampler(pid)
        sampler.start()
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        elapsed = time.perf_counter() - start
        peak = _peak_rss_linux(pid)
        sampler.stop.set()
        peak = peak if peak is not None else sampler.peak
    if save:
        nbformat.write(nb, path)
    return elapsed, peak


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--save", action="store_true", help="write the executed notebooks back")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    rows, total = [], 0.0
    print(f"{'notebook':<36} {'wall time (s)':>13} {'peak RSS (MB)':>13}", flush=True)
    for path in paths:
        seconds, peak = run_notebook(path.resolve(), save=args.save)
        total += seconds
        rows.append((path.name, seconds, peak))
        print(f"{path.name:<36} {seconds:>13.1f} {peak / 2**20:>13.0f}", flush=True)
    print(f"{'total':<36} {total:>13.1f} {max(r[2] for r in rows) / 2**20:>13.0f}  (max)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
