"""deploy/prometheus: the alerting rules and the config that loads them, checked by promtool.

``promtool check rules`` (syntax, PromQL, templates), ``promtool check config`` (the
config, and through it the rule files it names), and ``promtool test rules`` on
gapwatch-alerts.test.yml (each alert fires with its labels from a gauge series).
promtool comes from Debian's ``prometheus`` package (.ci/run installs it). Without it
the tests fail, except on a machine with no ``CI`` variable at all, where they skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "rules" / "gapwatch-alerts.yml"
RULES_TEST = PROMETHEUS_DIR / "rules" / "gapwatch-alerts.test.yml"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if "CI" in os.environ:
            pytest.fail(
                "promtool not installed (Debian package 'prometheus'); required when CI is set"
            )
        pytest.skip("promtool not installed (Debian package 'prometheus') and CI unset")
    return path


def run_promtool(*args: str) -> str:
    result = subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS_DIR
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_the_rule_file_passes_promtool_check_rules() -> None:
    output = run_promtool("check", "rules", str(RULES))
    assert "SUCCESS: 6 rules found" in output


def test_prometheus_yml_passes_promtool_check_config_and_loads_the_rules() -> None:
    output = run_promtool("check", "config", str(CONFIG))
    assert "1 rule files found" in output
    assert str(RULES) in output


def test_the_rules_unit_tests_pass() -> None:
    run_promtool("test", "rules", str(RULES_TEST))


def test_the_rules_tests_cover_every_alert() -> None:
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULES_TEST.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == tested
    assert {"GapWideningSPC", "TrustFeedStale"} <= alerts


def test_prometheus_sends_to_alertmanager_and_scrapes_the_alerter() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["rule_files"] == ["rules/gapwatch-alerts.yml"]
    managers = config["alerting"]["alertmanagers"]
    assert any(t for m in managers for s in m["static_configs"] for t in s["targets"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    alerter = jobs["gapwatch-alerter"]
    assert alerter["dns_sd_configs"][0]["port"] == 6067


def test_a_broken_expectation_makes_promtool_test_rules_fail(tmp_path: Path) -> None:
    """The rules test is not vacuous: a wrong label in an expectation fails it."""
    broken = RULES_TEST.read_text().replace("measure: sii", "measure: ratio", 1)
    assert broken != RULES_TEST.read_text()
    (tmp_path / "gapwatch-alerts.yml").write_text(RULES.read_text())
    (tmp_path / "broken.test.yml").write_text(broken)
    result = subprocess.run(
        [promtool(), "test", "rules", str(tmp_path / "broken.test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "GapWideningSPC" in result.stdout + result.stderr
