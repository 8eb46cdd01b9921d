"""Benchmark: the day-budget scheduler on Exact Online's 5,000 calls a day, days compressed.

The daemon's own scheduler (``Engine.serve``) runs two flows on one Exact Online connection
against the simulators, on a virtual clock (``bench/virtual_time.py``: the clock jumps to the
next timer whenever nothing is left to do, so a day takes seconds):

``orders``    Exact → eAccounting, every 15 minutes, ``priority = 10``: ``--orders`` sales orders a
              day appear in Exact at random times (each day's own), each must reach eAccounting
              within the flow's interval (its next run);
``products``  eAccounting → Exact, every hour, ``priority = 0``: a first sync of ``--items``
              articles (item + its sales price: two calls each), which cannot fit in a day.

The Exact simulator enforces ``--minutely`` calls a minute and ``--daily`` a day (fixed windows,
the day resetting at midnight UTC, as Exact does) with Exact's headers, and answers 429 past them.

    .venv/bin/python bench/exact_day_budget.py                      # 20,000 items, 300 orders a day
    .venv/bin/python bench/exact_day_budget.py --no-prices          # items without a sales price: one call each
    .venv/bin/python bench/exact_day_budget.py --items 300 --orders 20 --daily 400 --json   # the CI smoke size

Figures: per day, the calls Exact counted (of them the orders flow's and the products flow's),
the orders placed and synced, the slowest order's delay, the items in Exact at the end of the day;
then the day the items were finished, 429s, days over the budget, and the real seconds it took.
Goals: every order within its interval every day, no 429, no day over the budget, and the items
done by the day the budget allows (``--items`` × calls an item ÷ the products flow's share).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import virtual_time

DAY = 86400.0
EPOCH = 1_799_971_200.0  # 2027-01-14 00:00:00 UTC: day 1 starts at a midnight
CLOCK = virtual_time.install(EPOCH - 60)  # a minute before the first midnight


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000, help="articles to sync into Exact (default 20,000)")
    parser.add_argument("--orders", type=int, default=300, help="sales orders a day placed in Exact (default 300)")
    parser.add_argument("--daily", type=int, default=5000, help="Exact's calls a day (default 5,000)")
    parser.add_argument("--minutely", type=int, default=60, help="Exact's calls a minute (default 60)")
    parser.add_argument("--reserve", type=int, default=50, help="daily_reserve of the connection (default 50)")
    parser.add_argument("--days", type=int, default=12, help="days to run at most (default 12)")
    parser.add_argument("--orders-interval", type=int, default=15, help="minutes between orders runs (default 15)")
    parser.add_argument("--no-prices", action="store_true", help="articles without a sales price (one call an item)")
    parser.add_argument("--json", action="store_true", help="one JSON line of figures per day and one of totals")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    return virtual_time.run(lambda: _bench(args))


async def _bench(args: argparse.Namespace) -> int:
    import random
    import tempfile

    import anyio
    import httpx
    from apicenterd_eaccounting import EAccountingConnector
    from apicenterd_exact_online import ExactOnlineConnector

    from apicenterd.config import Config
    from apicenterd.config.resolve import resolve
    from apicenterd.engine import Engine
    from apicenterd.observe import logs
    from apicenterd.registry import load_registry
    from apicenterd.state import SQLiteStore

    logs.configure("error", stream="stderr")
    real_start = virtual_time.real_seconds()
    rng = random.Random(args.seed)
    eacc_app = EAccountingConnector.simulator(seed=args.seed, records=args.items, customers=2, rate_limit=600)
    eacc = eacc_app.state.sim
    if args.no_prices:
        for article in eacc.articles.values():
            article["NetPrice"] = article["GrossPrice"] = None
    exact_app = ExactOnlineConnector.simulator(seed=args.seed, records=0, minutely=args.minutely, daily=args.daily)
    sim = exact_app.state.sim
    buyers = [
        sim.add_account(
            f"Buyer {n}", f"buyer{n}@shop.example", code=str(5000 + n), City="Gouda", Country="NL",
            AddressLine1=f"Markt {n}", Postcode="2801 JE",
        )
        for n in range(1, 21)
    ]
    products = [f"EXO-{n}" for n in range(1, 31)]
    for code in products:
        sim._store("logistics/Items", {"Code": code, "Description": f"Exact product {code}", "IsSalesItem": True})
    seeded_items = len(sim.data["logistics/Items"])

    calls_by_day: dict[int, int] = {}

    class Counting(httpx.AsyncBaseTransport):
        """Counts every REST API call Exact gets (not the token endpoint's: those are not in its limits), by (virtual) day."""

        def __init__(self, inner: httpx.AsyncBaseTransport):
            self.inner = inner

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            day = _day(CLOCK.time())
            if request.url.path.startswith("/api/v1/"):
                calls_by_day[day] = calls_by_day.get(day, 0) + 1
            return await self.inner.handle_async_request(request)

    folder = Path(tempfile.mkdtemp(prefix="exact-day-budget-"))
    raw = {
        "daemon": {"log_level": "error", "metrics_address": "", "shutdown_timeout": 600},
        "state": {"path": str(folder / "state.db")},
        "connections": {
            "eaccounting": {"connector": "eaccounting", **EAccountingConnector.demo_settings("http://eacc.test")},
            "exact": {
                "connector": "exact_online",
                **ExactOnlineConnector.demo_settings("http://exact.test"),
                "daily_reserve": args.reserve,
            },
        },
        "flows": {
            "orders": {
                "source": "exact",
                "target": "eaccounting",
                "entity": "orders",
                "interval": f"{args.orders_interval}m",
                "priority": 10,
                "options": {"statuses": ["new", "in_process", "completed"], "document": "order", "missing_products": "create"},
            },
            "products": {"source": "eaccounting", "target": "exact", "entity": "products", "interval": "1h"},
        },
    }
    resolved = resolve(Config(**raw), load_registry(), folder / "apicenterd.toml")
    transports = {"eaccounting": httpx.ASGITransport(eacc_app), "exact": Counting(httpx.ASGITransport(exact_app))}
    store = SQLiteStore(resolved.state_path)
    await store.open()
    engine = Engine(resolved, store, transports=transports)

    placed: dict[str, float] = {}  # Exact order number → virtual time placed
    synced: dict[str, float] = {}  # → virtual time seen in eAccounting
    items_done_at: float | None = None
    days: list[dict] = []
    interval = args.orders_interval * 60.0

    async def place_orders() -> None:
        """Each day, ``--orders`` orders at random times of that day."""
        day = 0
        while True:
            start = EPOCH + day * DAY
            times = sorted(start + rng.random() * DAY for _ in range(args.orders))
            for when in times:
                await anyio.sleep(max(0.0, when - CLOCK.time()))
                buyer = rng.choice(buyers)
                lines = [(rng.choice(products), float(rng.randint(1, 4)), float(rng.randint(100, 9000)) / 100)]
                order = sim.add_order(buyer["ID"], lines)
                placed[str(order["OrderNumber"])] = CLOCK.time()
            day += 1
            await anyio.sleep(max(0.0, EPOCH + day * DAY - CLOCK.time()))

    def items_in_exact() -> int:
        return len(sim.data["logistics/Items"]) - seeded_items

    async def watch(tg: anyio.abc.TaskGroup) -> None:
        """Every virtual minute: which orders reached eAccounting, whether the items are done; a
        line of figures at each midnight."""
        nonlocal items_done_at
        day = 1
        while True:
            await anyio.sleep(60.0)
            now = CLOCK.time()
            for order in eacc.orders.values():
                number = str(order.get("YourReference"))
                if number in placed and number not in synced:
                    synced[number] = now
            if items_done_at is None and items_in_exact() >= args.items:
                items_done_at = now
            if now >= EPOCH + day * DAY:
                days.append(_day_figures(day))
                print(f"day {day}: {days[-1]} ({virtual_time.real_seconds() - real_start:.0f} s)", file=sys.stderr, flush=True)
                day += 1
                if items_done_at is not None or day > args.days:
                    engine.stop()
                    tg.cancel_scope.cancel()
                    return

    def _day_figures(day: int) -> dict:
        start, end = EPOCH + (day - 1) * DAY, EPOCH + day * DAY
        mine = [n for n, t in placed.items() if start <= t < end]
        delays = [synced[n] - placed[n] for n in mine if n in synced]
        # late: synced more than an interval (and the minute this watch looks) after it was placed,
        # or not synced and already that late (one placed just before midnight is judged when synced)
        limit = interval + 60
        late = sum(1 for n in mine if (synced[n] if n in synced else CLOCK.time()) - placed[n] > limit)
        return {
            "day": day,
            "calls": calls_by_day.get(day, 0),
            "orders_placed": len(mine),
            "orders_synced": len(delays),
            "orders_late": late,
            "slowest_order_minutes": round(max(delays, default=0.0) / 60, 1),
            "items_in_exact": items_in_exact(),
        }

    await engine.open(["exact", "eaccounting"])
    budget = engine.budgets["exact"]
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(place_orders)
            tg.start_soon(watch, tg)
            await tg.start(engine.serve)
    finally:
        await engine.aclose()
        await store.close()

    over = [d["day"] for d in days if d["calls"] > args.daily]
    finished_day = _day(items_done_at) if items_done_at is not None else None
    spent = {name: use.calls for name, use in budget.flows.items()}
    per_item = spent["products"] / max(1, items_in_exact())
    totals = {
        "items": args.items,
        "orders_a_day": args.orders,
        "daily": args.daily,
        "minutely": args.minutely,
        "prices": not args.no_prices,
        "items_finished_day": finished_day,
        "items_in_exact": items_in_exact(),
        "orders_placed": len(placed),
        "orders_late": sum(
            1 for n, at in placed.items() if (synced[n] if n in synced else CLOCK.time()) - at > interval + 60
        ),
        "slowest_order_minutes": round(max((synced[n] - placed[n] for n in synced), default=0.0) / 60, 1),
        "refusals_429": sim.refusals,
        "days_over_budget": over,
        "max_calls_a_day": max((d["calls"] for d in days), default=0),
        "orders_calls": spent["orders"],
        "products_calls": spent["products"],
        "calls_per_item": round(per_item, 3),
        "real_seconds": round(virtual_time.real_seconds() - real_start, 1),
    }
    if args.json:
        for row in days:
            print(json.dumps(row))
        print(json.dumps(totals))
    else:
        print("| day | calls | orders placed | synced | late | slowest (min) | items in Exact |")
        print("|---|---|---|---|---|---|---|")
        for d in days:
            print(
                f"| {d['day']} | {d['calls']} | {d['orders_placed']} | {d['orders_synced']} | {d['orders_late']} "
                f"| {d['slowest_order_minutes']} | {d['items_in_exact']} |"
            )
        print()
        for key, value in totals.items():
            print(f"{key}: {value}")
    ok = (
        finished_day is not None
        and totals["orders_late"] == 0
        and sim.refusals == 0
        and not over
    )
    return 0 if ok else 1


def _day(unix: float) -> int:
    """Day 1 is the first whole day of the run."""
    return math.floor((unix - EPOCH) / DAY) + 1


if __name__ == "__main__":
    sys.exit(main())
