"""The collector's status page at `/`, loaded the way a technician sees it: in a real browser.

A real agent polls snmpsim recordings through Mosquitto into a real collector; headless
Chromium (Debian `chromium`) renders `/`, and what it shows is compared with what the same
collector exposes on /metrics at the same moment: every site and its online state, UP/DOWN per
device, the down reason, and signal and power readings. A phone-sized screenshot is saved under
the test's temp dir for a human to look at. Pure rendering details (escaping, summaries) are
tested on `statuspage.render` directly, without servers.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import struct
import subprocess
import time
import urllib.error
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from collector import statuspage
from collector.state import State
from devstack import procs
from devstack.servers import free_port
from pantau.wire import Field, Group, Kind, SampleSet, Status

SITE = "vsat-kpg-07"
# Stand-ins for the vendor profiles (issue 4), with the vendor-neutral names the page shows.
# UHP-MIB: demodulator SNR in 0.1 dB; PowerNet-MIB: battery capacity in 0.1 %, and
# upsBasicOutputStatus (2 onLine, 3 onBattery) turned into the 0/1 flag on_battery.
PROFILES = [
    {
        "name": "test-uhp-signal",
        "measurement": "signal",
        "scalars": [{"name": "snr_db", "oid": "1.3.6.1.4.1.8000.22.2.1.0", "scale": 0.1}],
    },
    {
        "name": "test-apc-power",
        "measurement": "power",
        "scalars": [
            {
                "name": "battery_charge_percent",
                "oid": "1.3.6.1.4.1.318.1.1.1.2.3.1.0",
                "scale": 0.1,
            },
            {"name": "on_battery", "oid": "1.3.6.1.4.1.318.1.1.1.4.1.1.0", "offset": -2},
        ],
    },
]
DEVICES = {  # name -> (community = recording, profiles)
    "modem": ("uhp", ["system", "if-mib", "test-uhp-signal"]),
    "ups": ("apc_smt750x-nmc2", ["system", "test-apc-power"]),
    "ghost": ("no-such-recording", ["system"]),  # nothing answers: DOWN, timeout
}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium not found: apt-get install chromium (make test installs it)")
    return path


def run_chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One headless Chromium run with its own profile directory (no state between runs)."""
    profile = tmp / f"chromium-profile-{time.monotonic_ns()}"
    return subprocess.run(
        [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class PageModel(HTMLParser):
    """What the status page says, read back from the DOM Chromium produced."""

    def __init__(self) -> None:
        super().__init__()
        self.sites: dict[str, dict[str, Any]] = {}
        self._site: str | None = None
        self._device: str | None = None
        self._capture: str | None = None
        self._text: list[str] = []
        self._nested = 0  # <li> open inside the device's (its down links)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("data-site"):
            self._site = a["data-site"]
            self.sites[self._site] = {
                "online": a.get("data-online") == "1",
                "badge": "",
                "devices": {},
            }
            self._device = None
        elif tag == "li" and self._device:
            self._nested += 1
        elif tag == "li" and a.get("data-device") and self._site:
            self._device = a["data-device"]
            self.sites[self._site]["devices"][self._device] = {
                "up": a.get("data-up") == "1",
                "badge": "",
                "text": "",
            }
        elif tag == "span" and "badge" in (a.get("class") or ""):
            self._capture, self._text = "badge", []

    def handle_data(self, data: str) -> None:
        if self._capture == "badge":
            self._text.append(data)
        if self._site and self._device:
            self.sites[self._site]["devices"][self._device]["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "span" and self._capture == "badge" and self._site:
            badge = "".join(self._text).strip()
            if self._device:
                self.sites[self._site]["devices"][self._device]["badge"] = badge
            else:
                self.sites[self._site]["badge"] = badge
            self._capture = None
        elif tag == "li" and self._nested:
            self._nested -= 1
        elif tag == "li":
            self._device = None
        elif tag == "section":
            self._site = None


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture
def stack(tmp_path: Path, mosquitto, victoria, snmpsim):
    http_port = free_port()
    ccfg = procs.collector_config(
        tmp_path / "collector.yaml",
        broker_port=mosquitto.port,
        influx_url=victoria.url,
        http_port=http_port,
    )
    devices = [
        procs.snmpsim_device(name, community, snmpsim.port, profiles=profiles)
        for name, (community, profiles) in DEVICES.items()
    ]
    acfg = procs.agent_config(
        tmp_path / "agent.yaml",
        site=SITE,
        broker_port=mosquitto.port,
        devices=devices,
        profiles=PROFILES,
        interval=2.0,
    )
    coll = procs.collector(ccfg, tmp_path / "collector.log").start()
    agent = procs.agent(acfg, tmp_path / "agent.log").start()
    url = f"http://127.0.0.1:{http_port}"

    def all_reported() -> bool:
        m = procs.scrape(http_port)
        return (
            all(("pantau_device_up", (("device", d), ("site", SITE))) in m for d in DEVICES)
            and ("pantau_signal_snr_db", (("device", "modem"), ("site", SITE))) in m
        )

    try:
        procs.wait_until(all_reported, 30, "every device in /metrics")
        yield {"url": url, "http": http_port, "agent": agent}
    finally:
        agent.stop()
        coll.stop()


def test_status_page_in_chromium_matches_collector_state(stack, tmp_path: Path) -> None:
    """What a browser shows is what the collector knows: same sites, states and values."""
    url = stack["url"] + "/"
    dom = run_chromium(tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    metrics = procs.scrape(stack["http"])
    page = PageModel()
    page.feed(dom.stdout)

    sites = {dict(k[1])["site"]: v for k, v in metrics.items() if k[0] == "pantau_site_online"}
    assert set(page.sites) == set(sites) == {SITE}
    assert page.sites[SITE]["online"] is (sites[SITE] == 1.0)
    assert page.sites[SITE]["badge"] == "ONLINE"

    devices = {
        dict(k[1])["device"]: v
        for k, v in metrics.items()
        if k[0] == "pantau_device_up" and dict(k[1])["site"] == SITE
    }
    shown = page.sites[SITE]["devices"]
    assert set(shown) == set(devices) == set(DEVICES)
    for name, up in devices.items():
        assert shown[name]["up"] is (up == 1.0), name
        assert shown[name]["badge"] == ("UP" if up == 1.0 else "DOWN"), name
    assert shown["ghost"]["badge"] == "DOWN"
    reason = next(
        dict(k[1])["reason"]
        for k in metrics
        if k[0] == "pantau_device_down_reason_info" and dict(k[1])["device"] == "ghost"
    )
    assert reason in shown["ghost"]["text"]
    assert list(shown)[0] == "ghost", "devices that are down come first"

    # Readings: the same numbers /metrics has, with their units.
    snr = metrics[("pantau_signal_snr_db", (("device", "modem"), ("site", SITE)))]
    assert f"SNR{snr:.1f} dB" in shown["modem"]["text"]
    charge = metrics[("pantau_power_battery_charge_percent", (("device", "ups"), ("site", SITE)))]
    assert f"Charge{charge:.0f} %" in shown["ups"]["text"]
    on_battery = metrics[("pantau_power_on_battery", (("device", "ups"), ("site", SITE)))]
    assert ("On batteryYES" if on_battery else "On batteryno") in shown["ups"]["text"]
    assert "up " in shown["modem"]["text"], "the device's uptime is shown"

    shot = tmp_path / "status.png"
    result = run_chromium(
        tmp_path, f"--screenshot={shot}", "--window-size=412,915", "--hide-scrollbars", url
    )
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    assert png_size(shot) == (412, 915)
    assert shot.stat().st_size > 5000, "the screenshot looks blank"
    print(f"status page screenshot: {shot}")


def test_status_page_shows_a_dark_site_and_is_read_only(stack) -> None:
    """A killed agent's site turns OFFLINE with the will's reason; the page accepts no writes
    and tells the browser to load nothing else."""
    url = stack["url"] + "/"
    stack["agent"].kill()  # SIGKILL: the broker publishes the agent's Last Will
    procs.wait_until(
        lambda: 'data-online="0"' in procs.http_get(url)[1], 15, "the site shown offline"
    )
    status, body = procs.http_get(url)
    assert status == 200 and "OFFLINE" in body and "connection lost" in body
    assert "1 offline" in body

    head = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(head, timeout=5) as resp:
        assert resp.status == 200 and resp.read() == b""
        assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    post = urllib.request.Request(url, data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(post, timeout=5)
    assert err.value.code == 405


NOW = 1_790_000_000.0


def sample(
    device: str, up: bool = True, groups: list[Group] | None = None, reason: str = ""
) -> SampleSet:
    return SampleSet(
        site="s1",
        device=device,
        seq=1,
        ts_ms=int(NOW * 1000) - 5000,
        duration_ms=100,
        up=up,
        reason=reason,
        groups=groups or [],
    )


def test_render_escapes_agent_text_and_summarises_rows() -> None:
    """Tags and reasons come from the sites: never markup. A 48-port switch stays one line."""
    state = State(stale_after=900)
    state.on_status(Status(v=1, site="s1", online=True, ts_ms=int(NOW * 1000)), now=NOW)
    rows = [
        Group(
            "signal", {"sensor": f"<b>SFP {i}</b>"}, [Field("rx_power_dbm", Kind.GAUGE, -3.0 - i)]
        )
        for i in range(3)
    ]
    rows.append(Group("power", {}, [Field("mains_ok", Kind.STATE, 0)]))
    state.on_sample_set(sample("sw", groups=rows), now=NOW)
    state.on_sample_set(sample("radio", up=False, reason="<script>alert(1)</script>"), now=NOW)
    page = statuspage.render(state.snapshot(now=NOW), now=NOW)

    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Rx</dt><dd>-5.0 … -3.0 dBm (3)</dd>" in page
    assert '<div class="bad"><dt>Mains</dt><dd>FAIL</dd>' in page
    assert page.index('data-device="radio"') < page.index('data-device="sw"'), "down first"
    assert '<meta name="viewport"' in page and 'http-equiv="refresh"' in page
    assert "http://" not in page and "https://" not in page, "no external assets"


def test_render_without_sites() -> None:
    """A fresh collector answers with a page, not an error."""
    page = statuspage.render({}, now=NOW)
    assert "No site has reported yet." in page and "0 sites, 0 offline" in page


# -- problems first, links, units and dark sites, at phone and desktop widths ----------------


def layout_probe(page: str, width: int, height: int) -> str:
    """Test-only: a page holding the status page in an iframe of exactly `width` CSS pixels
    (headless Chromium's --dump-dom never lays out narrower than 500 px; its screenshots do),
    with a script that measures the status page's layout and leaves the figures in the DOM for
    --dump-dom. The status page itself has no script."""
    return (
        '<!DOCTYPE html><html><body style="margin:0">'
        f'<iframe id="f" style="border:0;width:{width}px;height:{height}px" '
        f'srcdoc="{html.escape(page, quote=True)}"></iframe>'
        """<script>
document.getElementById("f").addEventListener("load", (ev) => {
  const doc = ev.target.contentDocument;
  const w = doc.documentElement.clientWidth;
  const wide = [...doc.querySelectorAll("section, li, dl, h2, .meta, .links")]
    .filter((e) => e.getBoundingClientRect().right > w + 0.5)
    .map((e) => e.className);
  const unknown = doc.querySelector('li[data-state="unknown"]');
  document.body.setAttribute("data-layout", JSON.stringify({
    width: ev.target.contentWindow.innerWidth,
    client: w,
    scroll: doc.documentElement.scrollWidth,
    wide: wide,
    greyed: unknown ? Number(getComputedStyle(unknown).opacity) : null,
  }));
});
</script></body></html>"""
    )


def _iface(index: int, oper: int, name: str = "", descr: str = "") -> Group:
    tags = {"ifIndex": str(index), **({"ifName": name} if name else {})}
    if descr:
        tags["ifDescr"] = descr
    return Group(
        "interface",
        tags,
        [Field("oper_status", Kind.STATE, oper), Field("admin_status", Kind.STATE, 1)],
    )


def _ss(site: str, device: str, seq: int, ts: float, up: bool = True, **kw: Any) -> SampleSet:
    return SampleSet(
        site=site,
        device=device,
        seq=seq,
        ts_ms=int(ts * 1000),
        duration_ms=150,
        up=up,
        reason="" if up else "timeout",
        **kw,
    )


def noc_state() -> dict[str, Any]:
    """Four sites: one fine, one with a device and links down, two dark (will, clean stop)."""
    state = State(60)
    t0 = NOW - 3 * 3600
    for site in ("bts-fine-01", "olt-trouble-02", "vsat-dark-03", "mw-stopped-04"):
        devices = ["router", "olt", "radio", "modem", "ups"]
        state.on_status(
            Status(v=1, site=site, online=True, ts_ms=int(t0 * 1000), devices=devices), now=t0
        )
    power = Group(
        "power",
        {},
        [
            Field("battery_voltage_volts", Kind.GAUGE, 53.6),
            Field("load_current_amperes", Kind.GAUGE, 12.4),
            Field("load_power_watts", Kind.GAUGE, 664.0),
            Field("battery_temperature_celsius", Kind.GAUGE, 31.5),
            Field("mains_ok", Kind.STATE, 1),
        ],
    )
    signal = Group(
        "signal",
        {},
        [
            Field("rsl_dbm", Kind.GAUGE, -48.2),
            Field("mse_db", Kind.GAUGE, -36.0),
            Field("capacity_bps", Kind.GAUGE, 155_520_000),
            Field("modulation", Kind.STATE, 7),
        ],
    )
    fine = [_iface(i, 1, name=f"ether{i}") for i in range(1, 5)]
    state.on_sample_set(
        _ss("bts-fine-01", "router", 1, NOW - 20, groups=[power, signal, *fine]), now=NOW - 20
    )
    # A PON port down 40 min, another (no ifName) since 10 min; a radio down since 25 min.
    olt_links = [_iface(1, 1, name="gpon0/1"), _iface(2, 2, name="gpon0/2"), _iface(3, 1)]
    state.on_sample_set(
        _ss("olt-trouble-02", "olt", 1, NOW - 2400, groups=olt_links), now=NOW - 2400
    )
    olt_links += [_iface(4, 7, descr="uplink xe-0/0/1 to core")]
    state.on_sample_set(_ss("olt-trouble-02", "olt", 2, NOW - 600, groups=olt_links), now=NOW - 600)
    state.on_sample_set(_ss("olt-trouble-02", "olt", 3, NOW - 15, groups=olt_links), now=NOW - 15)
    for seq, ago_s in enumerate((1500, 900, 10), 1):
        state.on_sample_set(
            _ss("olt-trouble-02", "radio", seq, NOW - ago_s, up=False), now=NOW - ago_s
        )
    for site, last in (("vsat-dark-03", NOW - 7260), ("mw-stopped-04", NOW - 3060)):
        state.on_sample_set(_ss(site, "modem", 1, t0 + 10, groups=[signal, *fine[:2]]), now=t0 + 10)
        state.on_sample_set(_ss(site, "ups", 1, t0 + 10, up=False), now=t0 + 10)
        state.on_sample_set(_ss(site, "modem", 2, last, groups=[signal]), now=last)
        state.on_sample_set(_ss(site, "ups", 2, last, up=False), now=last)
        beat = Status(
            v=1,
            site=site,
            online=True,
            ts_ms=int(last * 1000),
            outbox_pending=17,
            outbox_oldest_age_s=95.0,
        )
        state.on_status(beat, now=last)
    state.on_status(
        Status(v=1, site="vsat-dark-03", online=False, ts_ms=0, reason="connection lost"),
        now=NOW - 7200,
    )
    stop_ts = NOW - 3000
    state.on_status(
        Status(
            v=1,
            site="mw-stopped-04",
            online=False,
            ts_ms=int(stop_ts * 1000),
            reason="agent stopped",
        ),
        now=stop_ts,
    )
    return state.snapshot(NOW)


def page_text(dom: str, site: str) -> str:
    """The text of one site's section."""
    start = dom.index(f'data-site="{site}"')
    section = dom[start : dom.index("</section>", start)]
    return html.unescape(re.sub(r"<[^>]+>", "", section))


class NocPage(PageModel):
    """PageModel plus order, per-device state and links, and the layout probe's figures."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[str] = []
        self.layout: dict[str, Any] = {}
        self.links: dict[tuple[str, str], dict[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        super().handle_starttag(tag, attrs)
        a = dict(attrs)
        if tag == "body" and a.get("data-layout"):
            self.layout = json.loads(a["data-layout"] or "{}")
        if tag == "section" and a.get("data-site"):
            self.order.append(a["data-site"] or "")
            self.sites[a["data-site"] or ""]["rank"] = a.get("data-rank")
        if tag == "li" and a.get("data-device") and self._site:
            self.sites[self._site]["devices"][a["data-device"]]["state"] = a.get("data-state")
        if tag == "span" and a.get("data-links-up") and self._site and self._device:
            self.links[(self._site, self._device)] = {
                "up": a.get("data-links-up") or "",
                "down": a.get("data-links-down") or "",
            }
        if tag == "span" and a.get("data-reason") is not None and self._site and not self._device:
            self.sites[self._site]["reason"] = a["data-reason"]


@pytest.mark.parametrize(
    ("label", "width", "height"), [("phone", 375, 812), ("desktop", 1280, 1200)]
)
def test_noc_page_in_chromium_problems_first(
    label: str, width: int, height: int, tmp_path: Path
) -> None:
    """Dark sites first, then the site with a device and links down, then the fine one; dark
    sites' devices unknown and greyed; down devices and links with since when; readings with
    scaled units; nothing wider than the screen, on a phone and on a desktop."""
    html_page = statuspage.render(noc_state(), now=NOW)
    page_file = tmp_path / "status.html"
    page_file.write_text(html_page, encoding="utf-8")
    probe_file = tmp_path / "probe.html"
    probe_file.write_text(layout_probe(html_page, width, height), encoding="utf-8")
    size = f"--window-size={width},{height}"
    dom = run_chromium(tmp_path, size, "--dump-dom", page_file.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    page = NocPage()
    page.feed(dom.stdout)
    probe = run_chromium(tmp_path, "--window-size=1400,900", "--dump-dom", probe_file.as_uri())
    assert probe.returncode == 0, probe.stderr[-2000:]
    measured = NocPage()
    measured.feed(probe.stdout)

    assert page.order == ["mw-stopped-04", "vsat-dark-03", "olt-trouble-02", "bts-fine-01"]
    assert [page.sites[s]["rank"] for s in page.order] == ["0", "0", "1", "2"]
    assert page.sites["vsat-dark-03"]["reason"] == "connection_lost"
    assert "dark for 2 h (since" in page_text(dom.stdout, "vsat-dark-03")
    assert "dark for 50 min (since" in page_text(dom.stdout, "mw-stopped-04")
    assert "backlog 17 waiting" in page_text(dom.stdout, "mw-stopped-04")
    assert page.sites["mw-stopped-04"]["reason"] == "stopped"
    for dark in ("vsat-dark-03", "mw-stopped-04"):
        shown = page.sites[dark]["devices"]
        assert {d["state"] for d in shown.values()} == {"unknown"}, dark
        assert {d["badge"] for d in shown.values()} == {"UNKNOWN"}, dark
        assert not any("RSL" in d["text"] for d in shown.values()), "no stale readings"
    assert "was down: timeout" in page.sites["vsat-dark-03"]["devices"]["ups"]["text"]

    trouble = page.sites["olt-trouble-02"]["devices"]
    assert list(trouble) == ["radio", "olt"], "down devices first"
    assert (
        trouble["radio"]["state"] == "down" and "down for 25 min (since" in trouble["radio"]["text"]
    )
    assert page.links[("olt-trouble-02", "olt")] == {"up": "2", "down": "2"}
    olt = trouble["olt"]["text"]
    assert "gpon0/2 down for 40 min (since" in olt
    assert "uplink xe-0/0/1 to core lowerLayerDown for 10 min (since" in olt
    assert page.links[("bts-fine-01", "router")] == {"up": "4", "down": "0"}

    router = page.sites["bts-fine-01"]["devices"]["router"]["text"]
    for text in (
        "RSL-48.2 dBm",
        "MSE-36.0 dB",
        "Capacity156 Mb/s",
        "modulationstate 7",
        "Battery53.6 V",
        "Load current12.4 A",
        "load_power_watts664 W",
        "Battery temp31.5 °C",
        "MainsOK",
    ):
        assert text in router, text

    layout = measured.layout
    assert layout["width"] == width, layout
    assert layout["scroll"] <= layout["client"] and layout["wide"] == [], layout
    assert layout["greyed"] is not None and layout["greyed"] < 1, "unknown devices greyed"

    shot = tmp_path / f"noc-{label}.png"
    result = run_chromium(
        tmp_path, f"--screenshot={shot}", size, "--hide-scrollbars", page_file.as_uri()
    )
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    assert png_size(shot) == (width, height)
    assert shot.stat().st_size > 5000, "the screenshot looks blank"
    print(f"status page screenshot ({label}): {shot}")
