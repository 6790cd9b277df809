#!/usr/bin/env python3
"""Writes crates/switchyard-server/dashboards/grafana.json, the Grafana dashboard over switchyard's /metrics.

Run from the repository root: python3 scripts/grafana-dashboard.py
Import the JSON in Grafana (Dashboards > New > Import) and pick a Prometheus data source that scrapes
switchyard's GET /metrics. crates/switchyard-server/tests/it/steering.rs checks that every query names a metric the server exports.
"""
import json
import pathlib

OUT = pathlib.Path("crates/switchyard-server/dashboards/grafana.json")
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}


def q(expr, legend, instant=False):
    target = {"expr": expr, "legendFormat": legend, "datasource": DS}
    if instant:
        # One value over the dashboard's whole time range (a stat or bar gauge), not a series of trailing windows.
        target.update({"instant": True, "range": False})
    return target


def row(title, y):
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}


def panel(title, unit, targets, x, y, w=12, h=8, kind="timeseries", description=""):
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]}},
        "targets": [dict(t, refId=chr(ord("A") + i)) for i, t in enumerate(targets)],
    }


def quantiles(metric, by=""):
    group = f"le{', ' + by if by else ''}"
    suffix = f" {{{{{by}}}}}" if by else ""
    return [
        q(f"histogram_quantile(0.5, sum by ({group}) (rate({metric}_bucket[$__rate_interval])))", "p50" + suffix),
        q(f"histogram_quantile(0.99, sum by ({group}) (rate({metric}_bucket[$__rate_interval])))", "p99" + suffix),
    ]


panels = []
y = 0
panels.append(row("Traffic and spend", y)); y += 1
panels += [
    panel("Requests per second by model", "reqps",
          [q('sum by (model) (rate(switchyard_requests_total[$__rate_interval]))', "{{model}}")], 0, y),
    panel("Requests per second by endpoint and status", "reqps",
          [q('sum by (endpoint, status) (rate(switchyard_requests_total[$__rate_interval]))', "{{endpoint}} {{status}}")], 12, y),
]; y += 8
panels += [
    panel("Spend per hour by model (catalog prices)", "currencyUSD",
          [q('sum by (model) (increase(switchyard_cost_usd_total[1h]))', "{{model}}")], 0, y),
    panel("Tokens per second by model", "short",
          [q('sum by (model, kind) (rate(switchyard_tokens_total[$__rate_interval]))', "{{model}} {{kind}}")], 12, y),
]; y += 8
panels.append(row("Latency", y)); y += 1
panels += [
    panel("Decision latency (encode + heads + policy)", "s", quantiles("switchyard_decision_seconds"), 0, y, w=8),
    panel("Encoder: tokenize and inference p99", "s", [
        q('histogram_quantile(0.99, sum by (le) (rate(switchyard_encode_tokenize_seconds_bucket[$__rate_interval])))', "tokenize p99"),
        q('histogram_quantile(0.99, sum by (le) (rate(switchyard_encode_inference_seconds_bucket[$__rate_interval])))', "inference p99"),
        q('histogram_quantile(0.99, sum by (le) (rate(switchyard_encode_seconds_bucket[$__rate_interval])))', "encode p99"),
    ], 8, y, w=8),
    panel("Upstream latency by model", "s", quantiles("switchyard_upstream_seconds", "model"), 16, y, w=8),
]; y += 8
panels += [
    panel("Encoder queue wait", "s", quantiles("switchyard_encode_queue_seconds"), 0, y, w=8),
    panel("Prompts per forward pass (batching)", "short", [q(
        'rate(switchyard_encode_batched_prompts_total[$__rate_interval]) / '
        'rate(switchyard_encode_batches_total[$__rate_interval])', "prompts per batch")], 8, y, w=8),
    panel("Embedding cache and refusals", "short", [
        q('rate(switchyard_encode_cache_hits_total[$__rate_interval]) / (rate(switchyard_encode_cache_hits_total[$__rate_interval]) + rate(switchyard_encode_cache_misses_total[$__rate_interval]))', "cache hit rate"),
        q('rate(switchyard_encode_rejected_total[$__rate_interval])', "429 encoder_busy/s"),
        q('switchyard_encode_queue_depth', "queued"),
    ], 16, y, w=8),
]; y += 8
panels.append(row("Fallbacks and upstream health", y)); y += 1
panels += [
    panel("Upstream calls by outcome", "reqps",
          [q('sum by (model, outcome) (rate(switchyard_upstream_calls_total[$__rate_interval]))', "{{model}} {{outcome}}")], 0, y, w=8),
    panel("Fallbacks and cooldowns", "short", [
        q('rate(switchyard_fallbacks_total[$__rate_interval])', "fallbacks/s"),
        q('increase(switchyard_cooldowns_total[$__rate_interval])', "cooldowns"),
    ], 8, y, w=8),
    panel("Upstreams in cooldown", "short",
          [q('switchyard_upstream_cooling == 1', "{{deployment}}")], 16, y, w=8,
          description="1 while a deployment is skipped after consecutive failures"),
]; y += 8
panels += [
    panel("Upstream error rate (moving average)", "percentunit",
          [q('switchyard_upstream_error_rate_ewma', "{{deployment}}")], 0, y),
    panel("Upstream latency (moving average)", "ms",
          [q('switchyard_upstream_latency_ewma_ms', "{{deployment}}")], 12, y),
]; y += 8
panels.append(row("Experiments, rules and feedback", y)); y += 1
panels += [
    panel("Requests per second by experiment arm", "reqps",
          [q('sum by (experiment, arm) (rate(switchyard_arm_requests_total[$__rate_interval]))', "{{experiment}}/{{arm}}")], 0, y, w=8),
    panel("Spend per request by arm", "currencyUSD", [q(
        'sum by (experiment, arm) (rate(switchyard_arm_cost_usd_total[$__rate_interval])) / '
        'sum by (experiment, arm) (rate(switchyard_arm_requests_total[$__rate_interval]))', "{{experiment}}/{{arm}}")], 8, y, w=8),
    panel("Fallback rate by arm", "percentunit", [q(
        'sum by (experiment, arm) (rate(switchyard_arm_fallbacks_total[$__rate_interval])) / '
        'sum by (experiment, arm) (rate(switchyard_arm_requests_total[$__rate_interval]))', "{{experiment}}/{{arm}}")], 16, y, w=8),
]; y += 8
panels += [
    panel("Mean feedback by arm (time range)", "percentunit", [q(
        'sum by (experiment, arm) (increase(switchyard_arm_feedback_score_total[$__range])) / '
        'sum by (experiment, arm) (increase(switchyard_arm_feedback_total[$__range]))', "{{experiment}}/{{arm}}",
        instant=True)], 0, y, w=6, kind="bargauge",
        description="The first feedback score of each request, averaged over the dashboard's time range (a later "
        "score for the same request is not counted again). `switchyard logs stats` compares the arms on the latest "
        "scores, with intervals, and says whether the difference is significant."),
    panel("Requests with feedback by arm (time range)", "short", [q(
        'sum by (experiment, arm) (increase(switchyard_arm_feedback_total[$__range]))', "{{experiment}}/{{arm}}",
        instant=True)], 6, y, w=6, kind="bargauge", description="How much evidence the mean feedback rests on."),
    panel("Mean latency by arm", "s", [q(
        'sum by (experiment, arm) (rate(switchyard_arm_latency_seconds_total[$__rate_interval])) / '
        'sum by (experiment, arm) (rate(switchyard_arm_requests_total[$__rate_interval]))', "{{experiment}}/{{arm}}")], 12, y, w=6),
    panel("Cut answers by arm", "percentunit", [q(
        'sum by (experiment, arm) (rate(switchyard_arm_cut_total[$__rate_interval])) / '
        'sum by (experiment, arm) (rate(switchyard_arm_judged_total[$__rate_interval]))', "{{experiment}}/{{arm}}")], 18, y, w=6,
        description="Share of the answers with a known finish reason that stopped at the token limit (finish_reason "
        "length). The finish reason is known when the decision log keeps answers (log.responses other than off)."),
]; y += 8
panels += [
    panel("Rule matches per second", "reqps",
          [q('sum by (rule) (rate(switchyard_rule_matches_total[$__rate_interval]))', "{{rule}}")], 0, y, w=8),
    panel("Feedback per second", "reqps",
          [q('sum by (outcome) (rate(switchyard_feedback_total[$__rate_interval]))', "{{outcome}}")], 8, y, w=8),
    panel("Decision log", "short", [
        q('rate(switchyard_log_rows_written_total[$__rate_interval])', "written/s"),
        q('rate(switchyard_log_rows_dropped_total[$__rate_interval])', "dropped/s (queue full)"),
        q('rate(switchyard_log_rows_failed_total[$__rate_interval])', "failed/s"),
        q('switchyard_log_queue_rows', "queued"),
    ], 16, y, w=8),
]; y += 8
panels.append(row("Online learning (learning.online)", y)); y += 1
panels += [
    panel("Predicted vs observed success by model and domain", "percentunit", [
        q('switchyard_predicted_success', "{{model}} / {{domain}} predicted"),
        q('switchyard_observed_success', "{{model}} / {{domain}} observed"),
    ], 0, y, w=12, description="The router's mean P(success) for the outcomes it saw against their mean score. "
       "A gap means the trained router is out of date there; prometheus-rules.yml alerts on it."),
    panel("Drift: predicted minus observed", "percentunit", [
        q('(switchyard_predicted_success - switchyard_observed_success) and switchyard_online_observations > 30',
          "{{model}} / {{domain}}"),
    ], 12, y, w=6),
    panel("Online updates per second by source", "reqps", [
        q('sum by (source) (rate(switchyard_online_updates_total[$__rate_interval]))', "{{source}}"),
        q('sum(switchyard_online_weight) / count(switchyard_online_weight)', "mean posterior weight"),
    ], 18, y, w=6),
]; y += 8
panels.append(panel("Router generation (reloads)", "none", [q('switchyard_router_generation', "generation"),
                                                              q('switchyard_router_reloads_total', "reloads")],
                    0, y, w=24, h=4, kind="stat"))

for i, p in enumerate(panels, start=1):
    p["id"] = i

dashboard = {
    "__inputs": [{"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "pluginId": "prometheus",
                  "pluginName": "Prometheus", "description": "The Prometheus that scrapes switchyard's /metrics"}],
    "title": "switchyard",
    "uid": "switchyard-overview",
    "description": "switchyard LLM router: traffic and spend by model, decision and upstream latency, fallbacks, "
                   "cooldowns, experiment arms, rules, feedback, the decision log and online learning.",
    "tags": ["switchyard", "llm", "router"],
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "time": {"from": "now-6h", "to": "now"},
    "refresh": "30s",
    "templating": {"list": []},
    "panels": panels,
}
OUT.write_text(json.dumps(dashboard, indent=2) + "\n")
print(f"wrote {OUT} ({len(panels)} panels)")
