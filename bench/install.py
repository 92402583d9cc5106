"""Install cost: time and disk size of a fresh install of the default dependencies, and with each integration.

Each install uses a new virtual environment and an empty uv cache, so every wheel is
downloaded from the package index as on a new machine. Also compares the `xgboost` wheel
(which pulls NVIDIA's NCCL) with `xgboost-cpu`, the project's default.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, save, timed_command

UV = "uv==0.13.8"
#: The optional integrations, each measured alone on top of the default install.
EXTRAS = ("s3", "mlflow")


def folder_mib(path: Path) -> float:
    out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def fresh_venv(where: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
    subprocess.run([str(where / "bin" / "python"), "-m", "pip", "install", "-q", UV], check=True)
    return where


def uv_install(venv: Path, cache: Path, *requirements: str) -> float:
    command = [str(venv / "bin" / "uv"), "pip", "install", "--python", str(venv / "bin" / "python"),
               "--cache-dir", str(cache), "--constraint", str(ROOT / "constraints.txt"), *requirements]
    return timed_command(command)


def xgboost_version() -> str:
    text = (ROOT / "constraints.txt").read_text()
    return re.search(r"^xgboost-cpu==([\w.]+) ; python_full_version < '3.12'", text, re.M).group(1)


def main() -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch)
        venv = fresh_venv(base / "default")
        empty = folder_mib(venv)
        seconds = uv_install(venv, base / "cache1", str(ROOT))
        default = {"seconds": seconds, "venv_mib": folder_mib(venv), "empty_venv_mib": empty}
        extras = {}
        for extra in EXTRAS:
            extra_venv = fresh_venv(base / extra)
            extras[extra] = {"seconds": uv_install(extra_venv, base / f"cache-{extra}", f"{ROOT}[{extra}]"),
                             "venv_mib": folder_mib(extra_venv)}
        version = xgboost_version()
        wheels = {}
        for name in ("xgboost-cpu", "xgboost"):
            env_dir = fresh_venv(base / name)
            before = folder_mib(env_dir)
            wheel_seconds = timed_command([str(env_dir / "bin" / "uv"), "pip", "install", "--python",
                                           str(env_dir / "bin" / "python"), "--cache-dir", str(base / f"cache-{name}"),
                                           f"{name}=={version}"])
            wheels[name] = {"seconds": wheel_seconds, "added_mib": folder_mib(env_dir) - before}
    return {"benchmark": "install", "python": sys.version.split()[0], "default_install": default, "extras": extras,
            "xgboost_wheels": wheels, "xgboost_version": version}


if __name__ == "__main__":
    save("install", main())
