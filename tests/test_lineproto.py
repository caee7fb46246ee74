r"""Line-protocol escaping (collector/lineproto.py), against the InfluxDB line-protocol rules:
measurements escape `\`, `,` and space; tag keys, tag values and field keys also `=`; string
field values escape `\` and `"`. A backslash is escaped everywhere, so that no value can escape
the separator after it and forge another tag. What line protocol cannot carry is replaced: a
newline in a name or tag becomes a space (in a string field the text `\n`), and trailing
backslashes of a name or tag are dropped (InfluxDB's parser reads `\\,` as `\` + escaped comma:
no escaping keeps a backslash before a separator there).

The unit tests check the exact text; the round trip writes it to a real VictoriaMetrics (which
parses line protocol as InfluxDB documents it) and reads every label back through
/api/v1/export. String field values are checked as text only: VictoriaMetrics stores a string
field as a series of value 0 (docs/influx-schema.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from collector.lineproto import gap_line, sample_set_lines, status_line
from devstack.servers import VictoriaMetrics, _Server, free_port
from pantau.wire import Field, Gap, Group, Kind, SampleSet, Status

TS = 1_767_225_600_000

# (name, raw value, how it must appear in line protocol as a tag value / key)
SPECIAL = [
    ("comma", "a,b", r"a\,b"),
    ("space", "a b", r"a\ b"),
    ("equals", "a=b", r"a\=b"),
    ("quote", 'a"b', 'a"b'),
    ("backslash", "C:\\ path", r"C:\\\ path"),
    ("newline", "a\nb", r"a\ b"),
    ("carriage_return", "a\r\nb", r"a\ \ b"),
    ("trailing_backslash", "uplink\\", "uplink"),
    ("trailing_backslashes", "a\\b\\\\", r"a\\b"),
    ("forged_tag", "a\\,site\\=victim", r"a\\\,site\\\=victim"),
]
# what a tag value reads back as: the same text, except that a newline becomes a space and
# trailing backslashes are gone
STORED = {name: raw.replace("\r", " ").replace("\n", " ").rstrip("\\") for name, raw, _ in SPECIAL}


def sample(groups: list[Group], site: str = "s1", device: str = "d1") -> SampleSet:
    return SampleSet(site, device, 5, TS, 100, True, "", groups)


@pytest.mark.parametrize(("name", "raw", "escaped"), SPECIAL, ids=[s[0] for s in SPECIAL])
def test_tag_values_are_escaped(name: str, raw: str, escaped: str) -> None:
    line = sample_set_lines(
        sample([Group("interface", {"ifAlias": raw, "ifIndex": "3"}, [Field("up", Kind.STATE, 1)])])
    )[1]
    assert line == f"interface,device=d1,ifAlias={escaped},ifIndex=3,site=s1 up=1i {TS}"


@pytest.mark.parametrize(("name", "raw", "escaped"), SPECIAL, ids=[s[0] for s in SPECIAL])
def test_tag_keys_and_field_keys_are_escaped(name: str, raw: str, escaped: str) -> None:
    line = sample_set_lines(
        sample([Group("m", {f"k{raw}": "v"}, [Field(f"f{raw}", Kind.STATE, 1)])])
    )[1]
    # `device` < `k…` < `site` in sort order
    assert line == f"m,device=d1,k{escaped}=v,site=s1 f{escaped}=1i {TS}"


MEASUREMENT = [
    ("comma", "a,b", r"a\,b"),
    ("space", "a b", r"a\ b"),
    ("equals", "a=b", "a=b"),  # not special in a measurement
    ("quote", 'a"b', 'a"b'),
    ("backslash", "a\\b", r"a\\b"),
    ("newline", "a\nb", r"a\ b"),
    ("trailing_backslash", "m\\", "m"),
]


@pytest.mark.parametrize(("name", "raw", "escaped"), MEASUREMENT, ids=[m[0] for m in MEASUREMENT])
def test_measurements_are_escaped(name: str, raw: str, escaped: str) -> None:
    line = sample_set_lines(sample([Group(raw, {}, [Field("x", Kind.STATE, 1)])]))[1]
    assert line == f"{escaped},device=d1,site=s1 x=1i {TS}"


STRINGS = [
    ("comma", "a,b", "a,b"),
    ("space", "a b", "a b"),
    ("equals", "a=b", "a=b"),
    ("quote", 'say "hi"', r"say \"hi\""),
    ("backslash", "C:\\ path", r"C:\\ path"),
    ("newline", "a\nb", r"a\\nb"),
    ("trailing_backslash", "x\\", r"x\\"),
    ("quote_after_backslash", 'x\\"', r"x\\\""),
]


@pytest.mark.parametrize(("name", "raw", "escaped"), STRINGS, ids=[s[0] for s in STRINGS])
def test_string_field_values_are_escaped(name: str, raw: str, escaped: str) -> None:
    ss = SampleSet(
        "s1", "d1", 5, TS, 100, False, raw, [Group("m", {}, [Field("d", Kind.INFO, raw)])]
    )
    lines = sample_set_lines(ss)
    assert lines[0].endswith(f',reason="{escaped}" {TS}')
    assert lines[1] == f'm,device=d1,site=s1 d="{escaped}" {TS}'
    status = Status(v=1, site="s1", online=False, ts_ms=TS, reason=raw)
    assert status_line(status, 0) == f'pantau_site,site=s1 online=0i,reason="{escaped}" {TS}'


def test_site_and_device_are_escaped_in_every_line() -> None:
    ss = sample([Group("m", {}, [Field("x", Kind.STATE, 1)])], site="s\\x", device="d 1\\")
    for line in sample_set_lines(ss):
        assert ",device=d\\ 1,site=s\\\\x " in line
    gap = Gap("s\\x", "d 1\\", 1, 2, 2, TS)
    assert gap_line(gap).startswith("pantau_gap,device=d\\ 1,site=s\\\\x first_seq=1i")
    status = Status(v=1, site="s\\x", online=True, ts_ms=TS)
    assert status_line(status, 0).startswith("pantau_site,site=s\\\\x online=1i")


def test_every_special_character_round_trips_through_victoriametrics(tmp_path) -> None:
    """Each special character in a tag value, a tag key and the measurement, written the way the
    collector writes it, reads back as the original text (a newline as a space, trailing
    backslashes dropped), and no value grew a tag of its own (the forged `site=victim` stays
    inside ifAlias)."""
    groups = [
        Group(
            "interface",
            {"ifAlias": raw, "ifIndex": name, "ifDescr": f"{raw}\\"},
            [Field("in_octets", Kind.COUNTER, i)],
        )
        for i, (name, raw, _) in enumerate(SPECIAL)
    ]
    groups.append(Group("odd", {"key with, =and\\": "v"}, [Field("n", Kind.STATE, 7)]))
    groups.append(Group("we ird,m\\", {"ifIndex": "x"}, [Field("n", Kind.STATE, 8)]))
    with VictoriaMetrics(tmp_path / "vm") as vm:
        vm.write_lines(sample_set_lines(sample(groups)))
        rows = vm.export('{site="s1",device="d1"}')
    by_index = {
        r["metric"]["ifIndex"]: r for r in rows if r["metric"]["__name__"] == "interface_in_octets"
    }
    assert sorted(by_index) == sorted(STORED)
    for i, (name, _, _) in enumerate(SPECIAL):
        labels = by_index[name]["metric"]
        assert labels["ifAlias"] == STORED[name], name
        assert labels["ifDescr"] == STORED[name], name  # its extra trailing `\` dropped
        assert set(labels) == {"__name__", "device", "site", "ifAlias", "ifDescr", "ifIndex"}
        assert labels["site"] == "s1"
        assert by_index[name]["values"] == [float(i)]
    (odd,) = [r for r in rows if r["metric"]["__name__"] == "odd_n"]
    assert odd["metric"]["key with, =and"] == "v"
    (weird,) = [r for r in rows if r["metric"]["__name__"] == "we ird,m_n"]
    assert weird["values"] == [8.0]


def test_a_tag_of_nothing_but_backslashes_is_left_out() -> None:
    line = sample_set_lines(
        sample([Group("m", {"ifAlias": "\\\\", "ifIndex": "1"}, [Field("x", Kind.STATE, 1)])])
    )[1]
    assert line == f"m,device=d1,ifIndex=1,site=s1 x=1i {TS}"


class _InfluxDB1(_Server):
    """InfluxDB 1.x (Debian `influxdb`): the same line-protocol parser (models/points.go) as
    InfluxDB 2, reached through /write?db= (1.6 has no /api/v2/write)."""

    name = "influxd"

    def _prepare(self) -> None:
        conf = subprocess.run(["influxd", "config"], capture_output=True, text=True).stdout
        for what in ("meta", "data", "wal"):
            conf = re.sub(
                rf'(?m)^(\s*(?:wal-)?dir = )"[^"]*/{what}"', rf'\1"{self.workdir / what}"', conf
            )
        conf = re.sub(
            r'bind-address = "127.0.0.1:8088"', f'bind-address = "127.0.0.1:{free_port()}"', conf
        )
        conf = re.sub(r'bind-address = ":8086"', f'bind-address = "127.0.0.1:{self.port}"', conf)
        conf = conf.replace("reporting-disabled = false", "reporting-disabled = true")
        (self.workdir / "influxd.toml").write_text(conf)

    def _command(self) -> list[str]:
        return ["influxd", "run", "-config", str(self.workdir / "influxd.toml")]

    def request(self, path: str, data: bytes | None = None) -> tuple[int, bytes]:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data)
        try:
            with opener.open(req, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def _ready(self) -> bool:
        try:
            return self.request("/ping")[0] == 204
        except OSError:
            return False

    def query(self, q: str) -> list[list[str]]:
        _, body = self.request("/query?" + urllib.parse.urlencode({"db": "t", "q": q}), b"")
        series = json.loads(body)["results"][0].get("series", [])
        return [row for one in series for row in one["values"]]


def _influx_unescape_tag(text: str) -> str:
    """What InfluxDB stores for an escaped tag (models.unescapeTag): only `\\,`, `\\ ` and
    `\\=` are unescaped, so an escaped backslash stays doubled."""
    for c in (",", " ", "="):
        text = text.replace("\\" + c, c)
    return text


@pytest.mark.servers
@pytest.mark.skipif(
    shutil.which("influxd") is None, reason="InfluxDB (Debian influxdb) not installed"
)
def test_influxdb_accepts_every_line_and_no_value_forges_a_tag(tmp_path: Path) -> None:
    """InfluxDB's own parser is stricter than its documentation: a backslash before a separator
    always escapes it (so a trailing backslash cannot be written: it is dropped), and `\\\\` in
    a tag is stored as two backslashes. Every line is accepted, and every tag stays one tag."""
    groups = [
        Group("interface", {"ifAlias": raw, "ifIndex": name}, [Field("n", Kind.STATE, 1)])
        for name, raw, _ in SPECIAL
    ]
    lines = sample_set_lines(sample(groups))
    with _InfluxDB1(tmp_path / "influxd") as influx:
        influx.request("/query?" + urllib.parse.urlencode({"q": "CREATE DATABASE t"}), b"")
        for line in lines:  # one by one: a refused line must not hide behind a partial write
            status, body = influx.request("/write?db=t&precision=ms", line.encode())
            assert status == 204, (line, body)
        keys = sorted(k for (k,) in influx.query('SHOW TAG KEYS FROM "interface"'))
        rows = influx.query('SELECT "n", "ifAlias", "ifIndex" FROM "interface"')
    assert keys == ["device", "ifAlias", "ifIndex", "site"]
    stored = {index: alias for _, _, alias, index in rows}
    for name, _, escaped in SPECIAL:
        assert stored[name] == _influx_unescape_tag(escaped), name
