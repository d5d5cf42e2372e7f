"""Benchmark: progressive vs predictive pacing of a pooled campaign, side by side on the same
simulated population and specialists (dialer/population.py driving dialer/predictive.py).

For each answer rate and pool size it runs `--days` calling days of both pacers (the same
seed: the same customers, ring, talk and wrap-up times, sign-ins and pauses) and prints talk
minutes per specialist-hour, the specialists' idle share, the abandon rate (mean, worst day,
worst rolling 30-day value), calls per hour and the predictive/progressive talk ratio.

    .venv/bin/python bench/bench_predictive.py                        # the full table
    .venv/bin/python bench/bench_predictive.py --rates 0.35 --sizes 20 --days 30
    .venv/bin/python bench/bench_predictive.py --rates 0.35 --sizes 20 --seed 2   # another population
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dialer.population import DayResult, Dist, PopulationSettings, simulate_days
from dialer.predictive import Pacer, PacingLimits


@dataclass(frozen=True, slots=True)
class Figures:
    talk_per_hour: float  # talk minutes per staffed specialist-hour
    idle: float
    abandon_mean: float
    abandon_worst_day: float
    abandon_worst_30d: float
    calls_per_hour: float
    seconds: float

    @classmethod
    def of(cls, days: list[DayResult], seconds: float) -> Figures:
        staffed = sum(d.staffed for d in days)
        answered = sum(d.answered for d in days)
        return cls(
            sum(d.talk for d in days) / 60.0 / (staffed / 3600.0),
            sum(d.idle for d in days) / staffed,
            sum(d.abandoned for d in days) / answered if answered else 0.0,
            max(d.abandon_rate for d in days),
            max(d.abandon_30d for d in days),
            sum(d.calls for d in days) / (sum(d.window_seconds for d in days) / 3600.0),
            seconds,
        )


def run(
    settings: PopulationSettings, limits: PacingLimits, size: int, days: int, seed: int
) -> Figures:
    started = time.process_time()
    out = simulate_days(settings, Pacer(limits), size, days=days, seed=seed)
    return Figures.of(out, time.process_time() - started)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rates", default="0.20,0.35,0.50", help="answer rates, comma-separated")
    ap.add_argument("--sizes", default="5,20,100", help="specialists in the pool, comma-separated")
    ap.add_argument("--days", type=int, default=30, help="calling days per run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cap", type=float, default=0.03, help="abandon cap (hard)")
    ap.add_argument("--target", type=float, default=0.02, help="target abandon rate")
    ap.add_argument("--day-cap", type=float, default=0.05, help="the day's abandon ceiling (hard)")
    ap.add_argument(
        "--day-floor", type=int, default=200, help="answers the day's ceiling counts at least"
    )
    ap.add_argument("--ratio-cap", type=float, default=3.0, help="calls in flight per specialist")
    ap.add_argument(
        "--talk-median", type=float, default=None, help="median talk seconds (default: settings)"
    )
    args = ap.parse_args()
    limits = PacingLimits(
        abandon_cap=args.cap,
        target_abandon=args.target,
        ratio_cap=args.ratio_cap,
        day_cap=args.day_cap,
        day_floor=args.day_floor,
    )
    print("load average at start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()), flush=True)
    print(
        "rate  seats  mode         talk min/h  idle   abandon mean  worst day  worst 30d  "
        "calls/h   ratio  cpu s"
    )
    for rate in (float(r) for r in args.rates.split(",")):
        for size in (int(n) for n in args.sizes.split(",")):
            settings = replace(PopulationSettings(), answer_rate=rate)
            if args.talk_median is not None:
                settings = replace(settings, talk=Dist("lognormal", args.talk_median, 0.9))
            prog = run(settings, replace(limits, predictive=False), size, args.days, args.seed)
            pred = run(settings, limits, size, args.days, args.seed)
            for name, f in (("progressive", prog), ("predictive", pred)):
                ratio = f.talk_per_hour / prog.talk_per_hour
                print(
                    f"{rate:4.0%}  {size:5}  {name:11}  {f.talk_per_hour:10.1f}  {f.idle:5.1%}  "
                    f"{f.abandon_mean:12.2%}  {f.abandon_worst_day:9.2%}  {f.abandon_worst_30d:9.2%}  "
                    f"{f.calls_per_hour:7.0f}  {ratio:5.2f}x  {f.seconds:5.1f}",
                    flush=True,
                )
    print("load average at end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
