"""The dashboard page in a real browser: headless Chromium (Debian's chromium and chromium-driver).

The driver is Debian's /usr/bin/chromedriver given explicitly, so selenium-manager downloads
nothing. The server runs in this process (a Dashboard fed by a KeyedMonitor over a seeded ward),
except in the test of the command itself.
"""

from __future__ import annotations

import os
import re
import signal
import tempfile
import time

import numpy as np
import pytest

from forked import ForkedCli

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
pytestmark = pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
                                reason="needs Debian's chromium and chromium-driver (.ci/run installs them)")

EVIL = "<img src=x onerror=alert(1)>"


def make_driver(width: int = 1400, height: int = 900):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="monitor-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


@pytest.fixture(scope="module")
def driver():
    d = make_driver()
    yield d
    d.quit()


@pytest.fixture
def dashboard(driver):
    from monitor.dashboard.address import Address
    from monitor.dashboard.live import Dashboard

    with Dashboard(Address.parse("127.0.0.1:0"), note=None, source="test ward") as dash:
        yield dash
        driver.get("about:blank")  # the page's event stream closed first: the server stops at once, not after 2 s


def wait_for(fn, timeout: float = 10.0, every: float = 0.05):
    end = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > end:
            return value
        time.sleep(every)


def open_page(driver, url: str) -> None:
    """Load url with the console log cleared of earlier pages (a closed page's EventSource retries)."""
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get(url)


def severe(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def tiles(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#tiles .tile .key')).map(e => e.textContent)")


def feed_ward(dash, patients: int = 20, minutes: float = 30, seed: int = 0):
    from monitor.keyed.keyed_monitor import KeyedMonitor
    from streams.ward import Ward

    mon = KeyedMonitor(seed=seed)
    for batch in Ward(patients=patients, minutes=minutes, seed=seed):
        dash.state.update(mon.process(batch))
    dash.state.set_summary(mon.summary(), final=True)
    return mon


def test_page_loads_without_console_errors_and_shows_one_tile_per_patient(driver, dashboard):
    mon = feed_ward(dashboard, patients=20)
    open_page(driver, dashboard.url)
    assert wait_for(lambda: len(tiles(driver)) == 20), tiles(driver)
    assert sorted(tiles(driver)) == [f"P{i:03d}" for i in range(20)]
    readings = driver.find_element("id", "f-readings").text
    assert readings == f"{mon.n_scored:,}"
    assert wait_for(lambda: driver.find_element("id", "status").text == "stream ended")
    assert severe(driver) == []


def test_an_alert_shows_within_2_s_of_the_reading_that_opened_it(driver, dashboard):
    from monitor.config import Span
    from monitor.keyed.keyed_monitor import KeyedMonitor
    from streams import Batch

    mon = KeyedMonitor(seed=0, alert_after=Span(readings=3), alert_clear=Span(readings=3))
    keys = np.array(["bed1", "bed2"] * 20, dtype=object)
    normal = Batch(time=np.arange(40.0), x=np.full((40, 1), 70.0), y=np.zeros(40), line=np.arange(40), key=keys)
    dashboard.state.update(mon.process(normal))
    open_page(driver, dashboard.url)
    assert wait_for(lambda: len(tiles(driver)) == 2)
    high = Batch(time=40.0 + np.arange(8.0), x=np.full((8, 1), 150.0), y=np.ones(8), line=40 + np.arange(8),
                 key=np.array(["bed2"] * 8, dtype=object))
    for _ in range(20):  # the network learns that 150 bpm is abnormal, a batch at a time
        scored = mon.process(high)
        if scored.alerts:
            break
        high = Batch(time=high.time + 8, x=high.x, y=high.y, line=high.line + 8, key=high.key)
    assert any(e["event"] == "open" for e in scored.alerts)
    t0 = time.monotonic()
    dashboard.state.update(scored)  # the reading that opened the alert reaches the dashboard
    shown = wait_for(lambda: driver.execute_script(
        "const t = document.querySelector('#tiles .tile.alert .key'); return t && t.textContent;"), timeout=2.0)
    took = time.monotonic() - t0
    assert shown == "bed2" and took <= 2.0
    assert tiles(driver)[0] == "bed2"  # open alerts first
    assert "open bed2" in driver.find_element("id", "alerts").text
    assert severe(driver) == []


def test_a_key_with_markup_renders_as_text(driver, dashboard):
    from monitor.keyed.keyed_monitor import KeyedMonitor
    from streams import Batch

    mon = KeyedMonitor(seed=0)
    keys = np.array([EVIL, "</script><b>x</b>", "plain"] * 4, dtype=object)
    batch = Batch(time=np.arange(12.0), x=np.full((12, 1), 72.0), y=np.zeros(12), line=np.arange(12), key=keys)
    dashboard.state.update(mon.process(batch))
    open_page(driver, dashboard.url)
    assert wait_for(lambda: len(tiles(driver)) == 3)
    assert sorted(tiles(driver)) == sorted([EVIL, "</script><b>x</b>", "plain"])
    assert driver.find_elements("css selector", "#tiles img, #tiles b") == []
    from selenium.common.exceptions import NoAlertPresentException
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text
    # the detail view of that key shows it as text too
    driver.execute_script("Array.from(document.querySelectorAll('#tiles .tile'))"
                          ".find(t => t.dataset.k === arguments[0]).click()", EVIL)
    assert wait_for(lambda: driver.find_element("id", "detail-title").text == EVIL)
    assert driver.find_elements("css selector", "#detail img") == []
    assert severe(driver) == []


def test_the_command_serves_a_20_patient_ward_until_sigterm(driver):
    proc = ForkedCli(["replay", "--stream", "ward", "--patients", "20", "--n", "30", "--dashboard", "127.0.0.1:0",
                      "--out", os.devnull], stdout=False)  # a real process (forked)
    try:
        url = None
        for line in map(bytes.decode, proc.stderr):
            m = re.search(r"dashboard at (http://\S+)", line)
            if m:
                url = m.group(1)
            if "stays up" in line:
                break
        assert url is not None
        open_page(driver, url)
        assert wait_for(lambda: len(tiles(driver)) == 20)
        assert wait_for(lambda: driver.find_element("id", "f-readings").text == f"{20 * 30 * 12:,}")
        assert severe(driver) == []
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 143
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_page_keeps_up_with_1000_keys(driver, dashboard):
    rng = np.random.default_rng(0)
    keys = np.array([f"bed{i:04d}" for i in range(1000)], dtype=object)

    def batch(t0: float):
        from monitor.core.monitor import Scored
        n = 4000  # every key 4 times
        v = rng.normal(75, 10, n)
        p = 1 / (1 + np.exp(-(v - 91)))
        return Scored(time=t0 + np.arange(n) / 1000, x=v[:, None], label=(v > 91).astype(float), p=p,
                      flag=p > 0.5, line=np.arange(n), key=np.tile(keys, 4))

    for i in range(30):
        dashboard.state.update(batch(4.0 * i))
    start = time.monotonic()
    open_page(driver, dashboard.url)
    assert wait_for(lambda: len(tiles(driver)) == 1000, timeout=20)
    first = time.monotonic() - start
    for i in range(30, 60):  # every key changes at every tick for ~6 s
        dashboard.state.update(batch(4.0 * i))
        time.sleep(0.2)
    assert wait_for(lambda: driver.find_element("id", "f-readings").text == f"{60 * 4000:,}")
    stats = driver.execute_script("return window.monitorStats")
    assert stats["events"] >= 10
    mean = stats["handlerMs"] / stats["events"]
    print(f"1,000 tiles in {first:.2f} s; {stats['events']} events, {mean:.1f} ms each on average, "
          f"{stats['maxMs']:.0f} ms at most")
    assert first < 10 and mean < 100  # a tick every 250 ms leaves the page most of its time
    assert severe(driver) == []


def test_a_stream_without_keys_is_one_large_chart(driver, dashboard):
    from monitor.core.monitor import Monitor
    from streams import Batch

    mon = Monitor(seed=0)
    v = 80 + 15 * np.sin(np.arange(600) / 40)
    dashboard.state.update(mon.process(Batch(time=np.arange(600.0), x=v[:, None], y=np.full(600, np.nan),
                                             line=np.arange(600))))
    open_page(driver, dashboard.url)
    assert wait_for(lambda: driver.find_element("id", "single").is_displayed())
    assert not driver.find_element("id", "tiles").is_displayed() and tiles(driver) == []
    assert driver.find_element("id", "f-readings").text == "600"
    # something was drawn: the chart's pixels are not all blank
    drawn = driver.execute_script(
        "const c = document.getElementById('single-chart'); const d = c.getContext('2d')"
        ".getImageData(0, 0, c.width, c.height).data; let n = 0; for (let i = 3; i < d.length; i += 4) "
        "if (d[i]) n++; return n;")
    assert drawn > 1000
    assert severe(driver) == []
