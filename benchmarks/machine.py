"""What a benchmark prints about the machine it ran on: the CPU's name and the load average."""

from __future__ import annotations

import os


def load_average() -> str:
    """The 1, 5 and 15-minute load averages, as ``lscpu``-free text."""
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (what ``lscpu`` calls Model name)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
