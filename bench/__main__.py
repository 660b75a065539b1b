"""python -m bench {all,api,storage,scale,pipeline,kafka,clients,import} [--quick] [--scale F] [--docs]

Runs the chosen sections one after the other on this machine, prints one results table with ratios against the
in-run references, and writes bench/results/<date>[-quick].json. Redis and Kafka: BENCH_REDIS_URL /
BENCH_KAFKA_BOOTSTRAP if set (the DB given is FLUSHED), else the harness starts its own on free ports.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback

from bench import report
from bench.infra import BenchEnv
from bench.stats import Row

SECTIONS = {  # name -> module under bench.sections, in the order `all` runs them
    "clients": "clients",
    "kafka": "kafka",
    "api": "http",
    "scale": "scale",
    "import": "imports",
    "pipeline": "pipeline",
}
STANDALONE = {"storage": "storage"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sections", nargs="+", choices=["all", *SECTIONS, *STANDALONE])
    parser.add_argument("--quick", action="store_true", help="small counts and short loads (< 3 minutes in all)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every count and duration (e.g. 0.05)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as markdown to FILE")
    parser.add_argument("--docs", action="store_true", help="rewrite the results block of docs/benchmarks.md")
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/<date>.json")
    args = parser.parse_args(argv)
    names = list(SECTIONS) if "all" in args.sections else args.sections

    env = BenchEnv(quick=args.quick, scale=args.scale)
    rows: list[Row] = []
    timings: dict[str, float] = {}
    failed = False
    started = time.monotonic()
    try:
        for name in names:
            module = importlib.import_module("bench.sections." + {**SECTIONS, **STANDALONE}[name])
            t0 = time.monotonic()
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
            try:
                rows.extend(module.run(env))
            except Exception as exc:  # noqa: BLE001 - one broken section must not hide the others' figures
                failed = True
                traceback.print_exc()
                rows.append(Row(module.SECTION, "(section failed)", note=f"{type(exc).__name__}: {exc}"[:200]))
            finally:
                env.stop_all()
            timings[name] = round(time.monotonic() - t0, 1)
            print(f"[bench] {name} done in {timings[name]} s", file=sys.stderr, flush=True)
    finally:
        env.close()
    report.fill_ratios(rows)
    meta = {
        **report.machine(),
        "quick": args.quick,
        "sections": names,
        "section_seconds": timings,
        "total_seconds": round(time.monotonic() - started, 1),
    }
    print()
    print(
        f"grizzly-partner bench: {meta['date']}, {meta['nproc']} CPU ({meta['cpu']}), "
        f"{'quick' if args.quick else 'full'} mode, {meta['total_seconds']} s"
    )
    print(report.text_table(rows))
    if not args.no_json:
        print(f"\nwritten: {report.write_json(rows, meta)}")
    if args.docs:
        print("docs/benchmarks.md " + ("updated" if report.update_docs(rows, meta) else "has no results markers"))
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as out:
            out.write(report.markdown_table(rows) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
