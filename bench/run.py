"""Run the benchmarks and write BENCHMARKS.md.

Usage: python run.py [parse|parse_compare|overhead|data|install|parallel|scheduler|integrations|spark ...]
"""

from __future__ import annotations

import importlib
import sys

from common import save

BENCHMARKS = {"parse": "parse", "parse_compare": "parse_compare", "overhead": "overhead", "data": "data_size",
              "install": "install", "parallel": "parallel", "scheduler": "scheduler", "integrations": "integrations",
              "spark": "spark"}


def main(names: list[str]) -> None:
    for name in names or list(BENCHMARKS):
        module = importlib.import_module(BENCHMARKS[name])
        save(BENCHMARKS[name], module.main())
    importlib.import_module("report").main()


if __name__ == "__main__":
    main(sys.argv[1:])
