"""The monitoring files, checked by the real Prometheus (Debian's `prometheus` package) on loopback.

promtool checks the alert rules (deploy/prometheus/alerts.yml), runs their unit tests
(alerts_test.yml) and checks the example scrape config. Then a real Prometheus server, started
from that example config with a 1 s scrape interval, scrapes a running daemon (fake engine) that
has transcribed a few files, plus an address where nothing listens (a daemon that is down).
Through Prometheus's HTTP API it evaluates every query docs/monitoring.md gives, each against the
value the files dropped make plausible; every expression of the Grafana dashboard; and every alert
rule, loaded by the server itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.daemon import REPO, DaemonProcess, Folders, wait_until
from tests.support.media import write_random_bytes, write_tone_wav
from tests.support.net import free_port

PROMETHEUS_DIR = REPO / "deploy" / "prometheus"
DASHBOARD = REPO / "deploy" / "grafana" / "transcribed-dashboard.json"
DOCS = REPO / "docs" / "monitoring.md"

#: The tones dropped into the inbox (seconds of audio each), and one file no decoder reads.
TONES = {"one.wav": 1.0, "two.wav": 2.0, "three.wav": 3.0}
BAD_FILES = ["noise.wav"]
#: Never taken (an extension not watched): stays in the inbox, counted in transcribed_inbox_ignored.
IGNORED_FILES = ["notes.txt"]
AUDIO_SECONDS = sum(TONES.values())
#: The fake engine: 1 s a job (the backlog is seen waiting), out of memory above batch 2 (4 -> 2).
FAKE = {"delay": 1.0, "oom_above_batch": 2}

#: Metrics the daemon exports on a GPU only: empty here (the fake engine runs on the CPU).
GPU_ONLY_METRICS = {"transcribed_gpu_memory_used_bytes", "transcribed_gpu_memory_total_bytes"}
#: Exported only when `libraries:` are configured (the monitored daemon has none).
LIBRARY_ONLY_METRICS = {"transcribed_library_waiting"}
#: Grafana's own variables, and what stands for them when a dashboard query is sent to Prometheus.
GRAFANA_BUILTINS = {"__rate_interval": "4s", "__range": "5m", "__interval": "1s"}


# --- tools -----------------------------------------------------------------------------------------

def tool(name: str) -> str:
    """The path of a Debian `prometheus` package binary; in CI its absence fails, elsewhere skips."""
    found = shutil.which(name)
    if found is None:
        reason = (f"{name} not found on PATH: install Debian's `prometheus` package "
                  "(apt-get install prometheus)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """promtool run in deploy/prometheus (the files name each other relative to it)."""
    return subprocess.run([tool("promtool"), *args], cwd=PROMETHEUS_DIR, capture_output=True,
                          text=True, timeout=60, check=False)


# --- the files under test --------------------------------------------------------------------------

def alert_rules() -> list[dict[str, Any]]:
    """Every rule of alerts.yml."""
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def docs_queries() -> list[str]:
    """Every query of docs/monitoring.md: each line of its ```promql blocks, comments left out."""
    blocks = re.findall(r"^```promql\n(.*?)^```", DOCS.read_text(), flags=re.M | re.S)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_expressions(model: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, expression) of every panel target and every query annotation of the dashboard."""
    found = [(f"panel {p['title']!r} {t['refId']}", t["expr"])
             for p in model["panels"] if p["type"] != "row" for t in p["targets"]]
    found += [(f"annotation {a['name']!r}", a["expr"])
              for a in model["annotations"]["list"] if "expr" in a]
    return found


def metric_names(expression: str) -> set[str]:
    """The metric names an expression reads (this project's, the process collector's, `up`)."""
    names = set(re.findall(r"\b(?:transcribed|process)_[a-z_]+\b", expression))
    return names | ({"up"} if re.search(r"\bup\s*\{", expression) else set())


def with_variables(expression: str, job: str, instance: str) -> str:
    """A dashboard expression as Grafana sends it: $job, $instance and its built-ins replaced."""
    values = {"job": job, "instance": instance, "datasource": "", **GRAFANA_BUILTINS}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"{expression}: ${name} is no variable of the dashboard"
        return values[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, expression)


# --- a real Prometheus -----------------------------------------------------------------------------

class Prometheus:
    """`prometheus` in a child process on a free loopback port, with its own temp storage."""

    def __init__(self, config: Path, storage: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = storage.parent / "prometheus.log"
        self.command = [tool("prometheus"), f"--config.file={config}",
                        f"--storage.tsdb.path={storage}", f"--web.listen-address=127.0.0.1:{self.port}"]
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Prometheus:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._ready, 30, "Prometheus to answer /-/ready", interval=0.2)
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"prometheus exited ({self.process.returncode}): "
                                 f"{self.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as reply:
                return reply.status == 200
        except (urllib.error.URLError, ConnectionError):
            return False

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)

    def api(self, path: str, **params: str | list[str]) -> dict[str, Any]:
        """GET /api/v1/<path>; the parsed answer, errors (HTTP 400/422) included."""
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params, doseq=True)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as reply:
                return json.load(reply)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def query(self, expression: str) -> dict[str, Any]:
        """The instant query's data (resultType, result); a query Prometheus refuses fails the test."""
        answer = self.api("query", query=expression)
        assert answer["status"] == "success", (expression, answer.get("errorType"), answer.get("error"))
        return answer["data"]

    def vector(self, expression: str) -> list[tuple[dict[str, str], float]]:
        """An instant vector's samples as (labels, value)."""
        data = self.query(expression)
        assert data["resultType"] == "vector", f"{expression}: a {data['resultType']}, not a vector"
        return [(sample["metric"], float(sample["value"][1])) for sample in data["result"]]

    def value(self, expression: str) -> float:
        """The one sample's value of an instant vector."""
        samples = self.vector(expression)
        assert len(samples) == 1, f"{expression}: expected one sample, got {samples}"
        return samples[0][1]


def scrape_config(daemon: str, down: str, storage_dir: Path) -> Path:
    """The example prometheus.yml, scraping `daemon` and `down` every second, rules loaded."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(PROMETHEUS_DIR / name) for name in config["rule_files"]]
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "transcribed")
    job["static_configs"] = [{"targets": [daemon, down]}]
    path = storage_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class Monitored:
    """A daemon that has finished the dropped files, and the Prometheus that scraped it."""

    prometheus: Prometheus
    daemon: DaemonProcess
    instance: str
    down_instance: str
    #: The daemon's own /metrics at the end, read directly (not through Prometheus).
    exported: dict[str, float]


def drop_files(folders: Folders) -> None:
    """Write each file beside the inbox, then move it in whole (as a user's `mv` would)."""
    for name, seconds in TONES.items():
        write_tone_wav(folders.root / name, seconds)
    for name in [*BAD_FILES, *IGNORED_FILES]:
        write_random_bytes(folders.root / name, 4096)
    for name in [*TONES, *BAD_FILES, *IGNORED_FILES]:
        shutil.move(folders.root / name, folders.inbox / name)


def read_exported(address: str) -> dict[str, float]:
    """The daemon's /metrics, each sample by name (labels left out: the totals used are unlabelled)."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if not s.labels}


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    """Prometheus scraping a daemon that has transcribed TONES and failed BAD_FILES."""
    tool("prometheus")  # before the daemon starts: a missing server fails (or skips) at once
    root = tmp_path_factory.mktemp("prometheus")
    folders = Folders(root / "daemon")
    instance, down = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    folders.write_config(metrics={"listen": instance}, packing={"enabled": False})  # one job at a time
    (root / "tsdb").mkdir()
    daemon = DaemonProcess(folders.config, engine="fake", env={"TRANSCRIBED_FAKE": json.dumps(FAKE)})
    with daemon, Prometheus(scrape_config(instance, down, root), root / "tsdb") as prometheus:
        wait_until(lambda: prometheus.vector(f'up{{instance="{instance}"}} == 1'), 30,
                   "Prometheus to scrape the idle daemon")
        drop_files(folders)
        finished = len(TONES) + len(BAD_FILES)
        wait_until(lambda: daemon.count("job.moved") == finished, 60, "every dropped file finished")
        wait_until(lambda: prometheus.vector(f"sum(transcribed_jobs_total) == {finished}"), 30,
                   "Prometheus to scrape the finished jobs")
        # Two more scrapes and rule evaluations after that (1 s each): rates see the last job.
        seen_at = prometheus.value(f'timestamp(up{{instance="{instance}"}})')
        wait_until(lambda: prometheus.value(f'timestamp(up{{instance="{instance}"}})') >= seen_at + 2, 30,
                   "two more scrapes")
        yield Monitored(prometheus, daemon, instance, down, read_exported(instance))
        assert daemon.stop() == 0


# --- promtool --------------------------------------------------------------------------------------

def test_alert_rules_pass_promtool_check() -> None:
    """`promtool check rules` accepts alerts.yml and finds every rule in it."""
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout, result.stdout


def test_alert_rule_unit_tests_pass() -> None:
    """`promtool test rules alerts_test.yml`: each alert fires when it should and not otherwise."""
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "FAILED" not in result.stdout, result.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    """alerts_test.yml expects each rule of alerts.yml to fire somewhere and to stay quiet somewhere."""
    cases = [case for test in yaml.safe_load((PROMETHEUS_DIR / "alerts_test.yml").read_text())["tests"]
             for case in test["alert_rule_test"]]
    fired = {case["alertname"] for case in cases if case["exp_alerts"]}
    quiet = {case["alertname"] for case in cases if not case["exp_alerts"]}
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "never expected to fire"
    assert names - quiet == set(), "never expected to stay quiet"


def test_example_scrape_config_passes_promtool_check() -> None:
    """`promtool check config` accepts prometheus.yml, rule files included."""
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 1 rule files found" in result.stdout, result.stdout


# --- the dashboard as a Grafana model (no server needed) -------------------------------------------

def test_dashboard_is_a_grafana_dashboard_model() -> None:
    """uid, title, schema version, a Prometheus data-source variable, and panels with targets on it
    that tile the 24-column grid without overlapping."""
    model = dashboard()
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", model["uid"]), model["uid"]
    assert model["title"] and isinstance(model["schemaVersion"], int) and model["schemaVersion"] >= 30
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in model["panels"]:
        check_panel(panel)
    assert not overlapping(model["panels"]), overlapping(model["panels"])


def check_panel(panel: dict[str, Any]) -> None:
    """One panel: a known type, a place on the grid; unless a row, targets on the variable's source."""
    where = f"panel {panel.get('title')!r}"
    assert panel["type"] in {"row", "stat", "timeseries", "bargauge", "gauge", "table", "text"}, where
    grid = panel["gridPos"]
    assert all(isinstance(grid[k], int) for k in "hwxy") and grid["x"] + grid["w"] <= 24, where
    if panel["type"] == "row":
        return
    assert panel["title"] and panel["description"], where
    assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
    assert panel["targets"], f"{where} has no targets"
    refs = [t["refId"] for t in panel["targets"]]
    assert len(refs) == len(set(refs)), f"{where}: refIds repeat"
    for target in panel["targets"]:
        assert target["datasource"] == panel["datasource"] and target["expr"].strip(), where


def overlapping(panels: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of panels whose grid rectangles overlap."""
    def cells(p: dict[str, Any]) -> set[tuple[int, int]]:
        g = p["gridPos"]
        return {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
    return [(a["title"], b["title"]) for i, a in enumerate(panels) for b in panels[i + 1:]
            if cells(a) & cells(b)]


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    """Throughput, backlog and ETA, outcomes, speed, batch and OOM, GPU memory, RSS, heartbeat."""
    used = set().union(*(metric_names(e) for _, e in dashboard_expressions(dashboard())))
    wanted = {"transcribed_audio_seconds_total", "transcribed_processing_seconds_total",
              "transcribed_queue_length", "transcribed_queue_audio_seconds", "transcribed_jobs_total",
              "transcribed_realtime_factor", "transcribed_batch_size", "transcribed_oom_backoffs_total",
              "transcribed_gpu_memory_used_bytes", "process_resident_memory_bytes",
              "transcribed_heartbeat_age_seconds", "transcribed_job_progress_ratio"}
    assert wanted - used == set()


# --- through the real server -----------------------------------------------------------------------

def one(expected: float, tolerance: float = 1e-9) -> Callable[[Monitored, list], None]:
    """A check: one sample, equal to `expected` (give or take `tolerance`)."""
    def check(m: Monitored, samples: list) -> None:
        assert len(samples) == 1, samples
        assert samples[0][1] == pytest.approx(expected, abs=tolerance)
    return check


def within(low: float, high: float) -> Callable[[Monitored, list], None]:
    """A check: one sample, low < value <= high."""
    def check(m: Monitored, samples: list) -> None:
        assert len(samples) == 1 and low < samples[0][1] <= high, samples
    return check


def empty(m: Monitored, samples: list) -> None:
    assert samples == []


def up_and_down(m: Monitored, samples: list) -> None:
    assert {labels["instance"]: value for labels, value in samples} == {m.instance: 1, m.down_instance: 0}


def by_outcome(m: Monitored, samples: list) -> None:
    counts = {labels["outcome"]: value for labels, value in samples}
    assert counts.get("done") == len(TONES) and counts.get("failed") == len(BAD_FILES), counts


def info(m: Monitored, samples: list) -> None:
    assert len(samples) == 1 and samples[0][1] == 1, samples
    assert samples[0][0]["model"] == "fake" and samples[0][0]["device"] == "cpu", samples


def throughput(m: Monitored, samples: list) -> None:
    """rate() over 5 minutes: the audio of the dropped files over 300 s (extrapolated a little)."""
    assert len(samples) == 1 and AUDIO_SECONDS * 0.99 <= samples[0][1] * 300 <= AUDIO_SECONDS * 1.3, samples


def speed(m: Monitored, samples: list) -> None:
    """Audio over processing seconds: the daemon's own two totals' ratio, read without Prometheus."""
    totals = m.exported
    exported = totals["transcribed_audio_seconds_total"] / totals["transcribed_processing_seconds_total"]
    assert len(samples) == 1 and samples[0][1] == pytest.approx(exported, rel=0.01), (samples, exported)


def alive_only(check: Callable[[Monitored, list], None]) -> Callable[[Monitored, list], None]:
    """`check` on the samples of the running daemon (the down target has none of its own metrics)."""
    def narrowed(m: Monitored, samples: list) -> None:
        assert all(labels.get("instance") == m.instance for labels, _ in samples), samples
        check(m, samples)
    return narrowed


#: Every query docs/monitoring.md gives, and what it must answer after the dropped files:
#: 3 tones (6 s of audio) done, 1 bad file failed, one out-of-memory back-off (batch 4 -> 2).
DOC_CHECKS: dict[str, Callable[[Monitored, list], None]] = {
    'up{job="transcribed"}': up_and_down,
    'transcribed_healthy{job="transcribed"}': alive_only(one(1)),
    'transcribed_info{job="transcribed"}': info,
    'sum by (outcome) (transcribed_jobs_total{job="transcribed"})': by_outcome,
    'sum(transcribed_jobs_total{job="transcribed", outcome="done"})': one(len(TONES)),
    'sum(rate(transcribed_audio_seconds_total{job="transcribed"}[5m]))': throughput,
    'sum(rate(transcribed_audio_seconds_total{job="transcribed"}[1h]))'
    ' / sum(rate(transcribed_processing_seconds_total{job="transcribed"}[1h]))': speed,
    'transcribed_realtime_factor{job="transcribed"}': alive_only(within(0, max(TONES.values()))),
    # Each job took the fake engine's 1 s and a little more: all in the (1, 2.5] bucket.
    'histogram_quantile(0.95, sum by (le) '
    '(rate(transcribed_job_processing_seconds_bucket{job="transcribed"}[1h])))': within(1.0, 2.5),
    'max(transcribed_queue_length{job="transcribed"})': one(0),
    # Files waited while the first ones ran (1 s each): Prometheus saw a backlog.
    'max_over_time(transcribed_queue_length{job="transcribed"}[1h])':
        alive_only(within(0, len(TONES) + len(BAD_FILES))),
    'avg_over_time(transcribed_busy{job="transcribed"}[5m])': alive_only(within(0, 1)),
    'sum(rate(transcribed_jobs_total{job="transcribed", outcome="failed"}[1h]))'
    ' / sum(rate(transcribed_jobs_total{job="transcribed", outcome=~"done|failed"}[1h]))':
        one(len(BAD_FILES) / (len(TONES) + len(BAD_FILES)), tolerance=0.01),
    'transcribed_heartbeat_age_seconds{job="transcribed"}': alive_only(within(-0.001, 10)),
    'transcribed_storage_waiting{job="transcribed"}': alive_only(one(0)),  # a roomy test folder
    'transcribed_batch_size{job="transcribed"}': alive_only(one(2)),
    'sum(increase(transcribed_oom_backoffs_total{job="transcribed"}[1h]))': within(0.99, 1.3),
    'process_resident_memory_bytes{job="transcribed"}': alive_only(within(20e6, 8e9)),
    'transcribed_gpu_memory_used_bytes{job="transcribed"}'
    ' / transcribed_gpu_memory_total_bytes{job="transcribed"}': empty,  # no GPU here
    'changes(transcribed_start_time_seconds{job="transcribed"}[1h])': alive_only(one(0)),
    # Every file finished: no job runs, no audio waits, so the backlog's ETA is 0 (0 over the
    # last hour's positive rate). What they showed while files waited: test_backlog_and_progress_*.
    'transcribed_job_progress_ratio{job="transcribed"}': alive_only(one(0)),
    'max(transcribed_queue_audio_seconds{job="transcribed"})': one(0),
    'max(transcribed_queue_audio_seconds{job="transcribed"})'
    ' / sum(rate(transcribed_audio_seconds_total{job="transcribed"}[1h]))': one(0),
    'max(transcribed_inbox_ignored{job="transcribed"})': one(len(IGNORED_FILES)),
}


def test_the_docs_give_exactly_the_checked_queries() -> None:
    """Every query of docs/monitoring.md has its check here, and every check its query there."""
    queries = docs_queries()
    assert len(queries) == len(set(queries)), "a query repeats in the docs"
    assert set(queries) - set(DOC_CHECKS) == set(), "queries in the docs without a check here"
    assert set(DOC_CHECKS) - set(queries) == set(), "checks here whose query the docs no longer give"


def test_every_docs_query_answers_a_plausible_value(monitored: Monitored) -> None:
    """Each docs query, evaluated by Prometheus, is an instant vector with the value the dropped
    files make plausible (jobs done == tones dropped, the failure ratio 1 in 4, ...)."""
    for query in docs_queries():
        samples = monitored.prometheus.vector(query)
        try:
            DOC_CHECKS[query](monitored, samples)
        except AssertionError as error:
            raise AssertionError(f"{query}: {error}") from None


def test_docs_dashboard_and_rules_read_only_exported_metrics(monitored: Monitored) -> None:
    """Each metric name in the docs' queries, the dashboard and the rules is one the daemon exports
    (seen by Prometheus), or one it exports on a GPU or with libraries only."""
    scraped = set(monitored.prometheus.api("label/__name__/values")["data"])
    expressions = [*docs_queries(), *(e for _, e in dashboard_expressions(dashboard())),
                   *(rule["expr"] for rule in alert_rules())]
    used = set().union(*(metric_names(e) for e in expressions))
    assert used - scraped - GPU_ONLY_METRICS - LIBRARY_ONLY_METRICS == set()


def test_every_dashboard_expression_evaluates(monitored: Monitored) -> None:
    """Each panel target and annotation, with the variables as Grafana fills them ("All" instances),
    is an instant vector Prometheus evaluates; non-empty unless it reads a GPU- or library-only metric."""
    for where, expression in dashboard_expressions(dashboard()):
        query = with_variables(expression, job="transcribed", instance=".*")
        samples = monitored.prometheus.vector(query)
        may_be_empty = metric_names(expression) & (GPU_ONLY_METRICS | LIBRARY_ONLY_METRICS)
        is_annotation = where.startswith("annotation")  # marks restarts: none happened here
        assert samples or may_be_empty or is_annotation, f"{where}: {query} returned nothing"


def test_backlog_and_progress_were_seen_while_files_waited(monitored: Monitored) -> None:
    """While the tones waited and ran (1 s each), Prometheus saw audio waiting, at most the tones'
    (the unreadable file's header tells nothing), and a job part of the way through."""
    waited = monitored.prometheus.vector(
        f'max_over_time(transcribed_queue_audio_seconds{{instance="{monitored.instance}"}}[1h])')
    progressed = monitored.prometheus.vector(
        f'max_over_time(transcribed_job_progress_ratio{{instance="{monitored.instance}"}}[1h])')
    within(0, AUDIO_SECONDS)(monitored, waited)
    within(0, 1)(monitored, progressed)


def test_dashboard_variables_find_the_daemon(monitored: Monitored) -> None:
    """The $job and $instance variables' label_values() queries list the scraped daemon."""
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    for name, expected in (("job", "transcribed"), ("instance", monitored.instance)):
        selector, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variables[name]["query"]).groups()
        selector = with_variables(selector, job="transcribed", instance=".*")
        values = monitored.prometheus.api(f"label/{label}/values", **{"match[]": selector})["data"]
        assert expected in values, (name, values)


def test_alert_rules_load_and_only_the_down_target_alerts(monitored: Monitored) -> None:
    """The server loads every rule of alerts.yml and evaluates it without error; on a healthy
    daemon no rule's condition holds, and the down target's `up == 0` holds for it alone."""
    groups = monitored.prometheus.api("rules")["data"]["groups"]
    rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
    assert set(rules) == {rule["alert"] for rule in alert_rules()}
    for name, rule in rules.items():
        assert rule["health"] == "ok" and not rule.get("lastError"), (name, rule.get("lastError"))
        assert not rule["lastEvaluation"].startswith("0001"), f"{name} never evaluated"
    for rule in alert_rules():
        samples = monitored.prometheus.vector(rule["expr"])
        instances = [labels.get("instance") for labels, _ in samples]
        expected = [monitored.down_instance] if rule["alert"] == "TranscribedDown" else []
        assert instances == expected, (rule["alert"], samples)
