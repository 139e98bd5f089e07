"""Dashboard speed in a real Chromium (a benchmark, not a test): the overview's first load, the
next review task after a submit, and the JS and CSS the overview downloads.

A live server (uvicorn in a thread, as tests/web runs it) on a fresh SQLite store, seeded as the
browser tests seed theirs (``serve_dashboard`` in tests/support/web.py: a device with a
heartbeat, ``--frames`` uncertain frames of the synthetic line with their images and review
tasks, two jobs, a production model version, an admin, a reviewer and a viewer), serves the
built dashboard (``make web``). Debian's Chromium (``/usr/bin/chromium``), headless, through
Playwright.

1. Overview: ``--runs`` loads of ``/`` signed in as the admin, each in a new browser context (a
   cold HTTP cache), after ``--warmup`` uncounted ones. Timed in the page: from the start of the
   navigation to the animation frame after every tile, table and chart shows the API's numbers
   (the frames tile has digits, the class mix chart is there, no loading skeleton is left).
2. Review: the reviewer on /review/ presses N (submit) ``--runs`` times, ``--think-ms`` apart.
   Timed in the page: from the keydown to the next task's image decoded (a new ``src``,
   ``img.decode()`` resolved) and the animation frame after it.
3. Bytes: the JS and CSS of one overview load (Resource Timing: body bytes as transferred, and
   decoded), and what gzip (level 6) would make of the same files.

Medians and p95 in ms; the bars (issue 11, "Fast") are 1000 ms and 300 ms.

    PYTHONPATH=tests .venv/bin/python benchmarks/dashboard.py
    PYTHONPATH=tests .venv/bin/python benchmarks/dashboard.py --runs 50 --json /tmp/dashboard.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from machine import cpu_name, load_average
from support.web import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, serve_dashboard, sign_in
from visionloop.config import Settings
from visionloop.server.dashboard import STATIC_DIR, dashboard_built
from visionloop.server.db import create_db_engine
from visionloop.server.migrate import upgrade

OVERVIEW_BAR_MS = 1000.0
REVIEW_BAR_MS = 300.0
TIMEOUT_MS = 30_000

# Runs before the page's own scripts: sets window.__vlReadyMs (ms since the navigation started)
# at the animation frame after the overview first shows all of its data.
OVERVIEW_READY_JS = """
(() => {
  const ready = () => {
    const frames = document.querySelector('[data-testid="frames"]');
    return frames !== null && /\\d/.test(frames.textContent || "")
      && document.querySelector('[aria-labelledby="classmix-title"]') !== null
      && document.querySelector(".skeleton") === null;
  };
  const observer = new MutationObserver(() => {
    if (!ready()) return;
    observer.disconnect();
    requestAnimationFrame(() => { window.__vlReadyMs = performance.now(); });
  });
  observer.observe(document, {
    childList: true, subtree: true, characterData: true, attributes: true,
  });
})();
"""

# Remembers when N went down (capture phase: before the page's own handler runs).
REVIEW_KEY_JS = """
() => window.addEventListener("keydown", (e) => {
  if (e.key === "N" || e.key === "n") window.__vlKeyAt = performance.now();
}, { capture: true })
"""

# Arms window.__vlNext: resolves to ms from the keydown to the next task's image decoded (its
# <img> has a src other than `previous`) and the animation frame after that.
REVIEW_ARM_JS = """
(previous) => {
  window.__vlKeyAt = undefined;
  window.__vlNext = new Promise((resolve, reject) => {
    const find = () => {
      const img = document.querySelector('img[alt="The frame to label"]');
      return img !== null && img.getAttribute("src") !== previous ? img : null;
    };
    const done = (img) => img.decode().then(
      () => requestAnimationFrame(() => resolve(performance.now() - window.__vlKeyAt)),
      (e) => reject(new Error(`the next image did not decode: ${e}`)),
    );
    const observer = new MutationObserver(() => {
      const img = find();
      if (img === null) return;
      observer.disconnect();
      done(img);
    });
    observer.observe(document.body, { childList: true, subtree: true, attributes: true });
  });
}
"""

CURRENT_IMAGE_JS = """
() => {
  const img = document.querySelector('img[alt="The frame to label"]');
  return img !== null && img.complete && img.naturalWidth > 0 ? img.getAttribute("src") : null;
}
"""

RESOURCES_JS = """
() => performance.getEntriesByType("resource").map((e) => ({
  name: e.name, encoded: e.encodedBodySize, decoded: e.decodedBodySize,
}))
"""


def median_p95(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def overview_load(browser: Any, url: str, state: Any) -> tuple[float, list[dict[str, Any]]]:
    """One first load of the overview in a new context: ms to the data shown, and the
    resources (Resource Timing) it fetched by then."""
    context = browser.new_context(viewport=VIEWPORT, storage_state=state)
    try:
        context.add_init_script(OVERVIEW_READY_JS)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "/")
        page.wait_for_function("window.__vlReadyMs !== undefined", timeout=TIMEOUT_MS)
        if "/signin" in page.url or errors:
            raise RuntimeError(f"the overview did not load signed in: {page.url} {errors}")
        return float(page.evaluate("window.__vlReadyMs")), list(page.evaluate(RESOURCES_JS))
    finally:
        context.close()


def bench_overview(browser: Any, url: str, args: argparse.Namespace) -> dict[str, Any]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    sign_in(page, url, "admin")
    state = context.storage_state()
    context.close()
    for _ in range(args.warmup):
        overview_load(browser, url, state)
    times: list[float] = []
    resources: list[dict[str, Any]] = []
    for _ in range(args.runs):
        ms, fetched = overview_load(browser, url, state)
        times.append(ms)
        resources = resources or fetched
    return {"ms": times, "bytes": asset_bytes(resources)}


def asset_bytes(resources: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """JS and CSS of one load: files, body bytes as transferred and decoded, and gzip -6 of the
    same files (read from the export on disk)."""
    out = {kind: {"files": 0, "transferred": 0, "decoded": 0, "gzip6": 0} for kind in ("js", "css")}
    for entry in resources:
        path = urlparse(entry["name"]).path
        kind = path.rsplit(".", 1)[-1]
        if kind not in out:
            continue
        row = out[kind]
        row["files"] += 1
        row["transferred"] += int(entry["encoded"])
        row["decoded"] += int(entry["decoded"])
        row["gzip6"] += len(gzip.compress((STATIC_DIR / path.lstrip("/")).read_bytes(), 6))
    return out


def bench_review(browser: Any, url: str, args: argparse.Namespace) -> dict[str, Any]:
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, url, "reviewer", start="/review/")
        page.wait_for_function(CURRENT_IMAGE_JS, timeout=TIMEOUT_MS)
        page.evaluate(REVIEW_KEY_JS)
        times = []
        for i in range(args.warmup + args.runs):
            page.wait_for_timeout(args.think_ms)  # a reviewer looks at the frame first
            previous = page.evaluate(CURRENT_IMAGE_JS)
            page.evaluate(REVIEW_ARM_JS, previous)
            page.keyboard.press("N")
            ms = float(page.evaluate("window.__vlNext"))
            page.get_by_test_id("done-count").filter(has_text=re.compile(f"^{i + 1}$")).wait_for()
            if i >= args.warmup:
                times.append(ms)
        if errors:
            raise RuntimeError(f"JavaScript errors on the review page: {errors}")
        return {"ms": times}
    finally:
        context.close()


def report(overview: dict[str, Any], review: dict[str, Any]) -> None:
    print(f"\n  {'measure':<44} {'median':>9} {'p95':>9} {'bar':>9}")
    for label, times, bar in (
        ("overview first load (cold cache)", overview["ms"], OVERVIEW_BAR_MS),
        ("review: N to the next task's image shown", review["ms"], REVIEW_BAR_MS),
    ):
        p50, p95 = median_p95(times)
        print(f"  {label:<44} {p50:6.0f} ms {p95:6.0f} ms {'< ' + f'{bar:.0f}':>6} ms")
    head = f"{'files':>5} {'transferred':>12} {'decoded':>10} {'gzip -6':>10}"
    print(f"\n  {'overview assets':<16} {head}")
    for kind, row in overview["bytes"].items():
        print(
            f"  {kind:<16} {row['files']:>5} {row['transferred'] / 1024:>9.1f} KiB "
            f"{row['decoded'] / 1024:>6.1f} KiB {row['gzip6'] / 1024:>6.1f} KiB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each measure")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted runs before them")
    parser.add_argument("--frames", type=int, default=40, help="frames (and review tasks) seeded")
    parser.add_argument("--think-ms", type=int, default=500, help="pause before each N")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if not dashboard_built():
        raise SystemExit(f"the dashboard is not built in {STATIC_DIR}: run `make web`")
    if not CHROMIUM.is_file():
        raise SystemExit(f"{CHROMIUM} is missing: run scripts/install-browser.sh")
    from playwright.sync_api import sync_playwright

    # Each N uses a task and one more stays leased ahead.
    frames = max(args.frames, args.warmup + args.runs + 2)
    cpu, load_start = cpu_name(), load_average()
    print(f"CPU: {cpu}; load average at start {load_start}", flush=True)
    with tempfile.TemporaryDirectory(prefix="vl-bench-") as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'visionloop.db'}"
        engine = create_db_engine(database_url)
        upgrade(engine)
        engine.dispose()
        t0 = time.perf_counter()
        settings = Settings(data_dir=Path(tmp), database_url=database_url)
        with serve_dashboard(settings, frames=frames) as dashboard, sync_playwright() as pw:
            print(f"  seeded {frames} frames in {time.perf_counter() - t0:.1f} s", flush=True)
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            print(f"  Chromium {browser.version}, {args.runs} runs (+{args.warmup} warm-up)")
            overview = bench_overview(browser, dashboard.url, args)
            review = bench_review(browser, dashboard.url, args)
            browser.close()
    load_end = load_average()
    report(overview, review)
    print(f"\n  load average at start {load_start}, at end {load_end}")
    if args.json:
        summary = {
            name: dict(zip(("median_ms", "p95_ms"), median_p95(result["ms"]), strict=True))
            for name, result in (("overview", overview), ("review", review))
        }
        args.json.write_text(
            json.dumps(
                {
                    "cpu": cpu,
                    "load_average_start": load_start,
                    "load_average_end": load_end,
                    "runs": args.runs,
                    "frames": frames,
                    "summary": summary,
                    "overview": overview,
                    "review": review,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
