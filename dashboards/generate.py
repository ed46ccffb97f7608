"""Generate nbmon's Grafana dashboards as plain, reproducible JSON (stdlib only).

    python dashboards/generate.py           # rewrite dashboards/*.json
    python dashboards/generate.py --check   # exit 1 if a committed file differs from what this script produces

The JSON is the classic Grafana dashboard model (schemaVersion 39). Every panel reads the `datasource`
template variable (type datasource, Prometheus) and every query uses only metrics of docs/metrics.md's metric
contract (no recording rules), so the dashboards work against any Prometheus that scrapes the app and
the daemon. PromQL is limited to what Prometheus 2.42 understands.

dashboards/validate.py checks the output against Grafana's own schema (the pinned grafana-foundation-sdk's
typed models): panel options and field configs therefore spell out the keys that schema requires even where
Grafana would fill in the same default (`frameIndex`, `wideLayout`, `barWidth`, legend `calcs`, ...).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

HERE = Path(__file__).resolve().parent
SCHEMA_VERSION = 39
DS: JSON = {"type": "prometheus", "uid": "${datasource}"}
RI = "$__rate_interval"
# The default rule of the daemon: enter degraded mode above this 503 ratio.
DEGRADED_THRESHOLD = 0.30
RECOVERY_THRESHOLD = 0.10


def target(ref_id: str, expr: str, legend: str = "", **extra: Any) -> JSON:
    """One Prometheus query of a panel."""
    out: JSON = {"datasource": DS, "refId": ref_id, "expr": expr, "legendFormat": legend or "__auto"}
    out.update(extra)
    return out


def panel(
    kind: str,
    title: str,
    description: str,
    unit: str,
    targets: list[JSON],
    grid: tuple[int, int, int, int],
    *,
    custom: JSON | None = None,
    thresholds: list[JSON] | None = None,
    overrides: list[JSON] | None = None,
    options: JSON | None = None,
    extra_defaults: JSON | None = None,
    transformations: list[JSON] | None = None,
    **extra: Any,
) -> JSON:
    """A panel with the fields every nbmon panel carries (datasource, unit, description, gridPos)."""
    x, y, w, h = grid
    defaults: JSON = {"unit": unit}
    if custom is not None:
        defaults["custom"] = custom
    defaults["thresholds"] = {
        "mode": "absolute",
        "steps": thresholds if thresholds is not None else [{"color": "green", "value": None}],
    }
    if extra_defaults:
        defaults.update(extra_defaults)
    out: JSON = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": options if options is not None else _default_options(kind),
        "targets": targets,
    }
    if transformations:
        out["transformations"] = transformations
    out.update(extra)
    return out


def _default_options(kind: str) -> JSON:
    if kind == "timeseries":
        return {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "showLegend": True,
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if kind == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "area",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
            "wideLayout": True,
            "showPercentChange": False,
            "percentChangeColorMode": "standard",
        }
    if kind == "table":
        return {
            "frameIndex": 0,
            "showHeader": True,
            "cellHeight": "sm",
            "footer": {"show": False, "reducer": ["sum"], "countRows": False},
        }
    if kind == "barchart":
        return {
            "orientation": "vertical",
            "xTickLabelRotation": 0,
            "xTickLabelMaxLength": 0,
            "showValue": "never",
            "stacking": "none",
            "barWidth": 0.97,
            "groupWidth": 0.7,
            "fullHighlight": False,
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
            "tooltip": {"mode": "single", "sort": "none"},
        }
    if kind == "state-timeline":
        return {
            "showValue": "never",
            "mergeValues": True,
            "rowHeight": 0.9,
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
            "tooltip": {"mode": "single", "sort": "none"},
        }
    return {}


def line(fill: int = 10, stacking: str = "none", draw: str = "line") -> JSON:
    return {
        "drawStyle": draw,
        "lineWidth": 1,
        "fillOpacity": fill,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": stacking, "group": "A"},
        "axisSoftMin": 0,
    }


def override(ref_or_name: str, props: dict[str, Any], *, by: str = "byFrameRefID") -> JSON:
    return {
        "matcher": {"id": by, "options": ref_or_name},
        "properties": [{"id": k, "value": v} for k, v in props.items()],
    }


def datasource_variable() -> JSON:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
        "skipUrlSync": False,
    }


def query_variable(name: str, label: str, query: str) -> JSON:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "hide": 0,
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "options": [],
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
    }


def dashboard(
    uid: str, title: str, description: str, panels: list[JSON], variables: list[JSON], tags: list[str]
) -> JSON:
    for i, p in enumerate(panels, start=1):
        p["id"] = i
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": tags,
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "refresh": "1m",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "weekStart": "",
        "links": [
            {
                "title": "nbmon dashboards",
                "type": "dashboards",
                "tags": ["nbmon"],
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "icon": "external link",
                "targetBlank": False,
                "tooltip": "",
                "url": "",
            }
        ],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                },
                {
                    "datasource": DS,
                    "enable": True,
                    "hide": False,
                    "iconColor": "red",
                    "name": "Degraded mode changes",
                    "expr": "changes(nbmon_degraded_mode[2m]) > 0",
                    "step": "60s",
                    "titleFormat": "Degraded mode changed",
                    "textFormat": "nbmon_degraded_mode changed ({{instance}})",
                },
            ]
        },
        "templating": {"list": variables},
        "panels": panels,
    }


# --------------------------------------------------------------------------- overview

RATIO_503 = (
    f'sum by (model) (rate(nbmon_requests_total{{code="503"}}[{RI}]))'
    f" / sum by (model) (rate(nbmon_requests_total[{RI}]))"
)


def with_role(expr: str, role: str) -> str:
    """`expr` (by model) kept for the models that have `role` in nbmon_model_info: no panel names a model."""
    return f'({expr}) and on (model) nbmon_model_info{{role="{role}"}}'


def primary_ratio(code_selector: str) -> str:
    """The share of the primary's HTTP attempts matching `code_selector`, summed over its IDs."""

    def rate(selector: str) -> str:
        return with_role(f"sum by (model) (rate(nbmon_requests_total{selector}[{RI}]))", "primary")

    return f"sum({rate(code_selector)}) / sum({rate('')})"


DEGRADED_MAPPINGS: list[JSON] = [
    {
        "type": "value",
        "options": {
            "0": {"text": "normal (primary)", "color": "green", "index": 0},
            "1": {"text": "DEGRADED (fallback)", "color": "red", "index": 1},
        },
    }
]


def overview_panels() -> list[JSON]:
    ps: list[JSON] = []
    # Row 0: the state at a glance.
    ps.append(
        panel(
            "stat",
            "Degraded mode",
            "The daemon's decision (nbmon_degraded_mode): 1 while the app is sent to the fallback (Flash) model. "
            "Entered above a 30% 503 ratio held for 5m, left below 10% held for 10m, or by a manual override.",
            "none",
            [target("A", "max(nbmon_degraded_mode)", "degraded")],
            (0, 0, 6, 4),
            thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}],
            extra_defaults={"mappings": DEGRADED_MAPPINGS},
        )
    )
    ps.append(
        panel(
            "stat",
            "503 ratio now (primary)",
            "Share of the primary model's HTTP attempts answered 503 UNAVAILABLE over the rate interval; red above "
            'the degraded-mode threshold (30%). The primary is nbmon_model_info{role="primary"}: the config\'s '
            "[models] primary, so this panel follows a change of model without an edit.",
            "percentunit",
            [target("A", primary_ratio('{code="503"}'), "503 ratio")],
            (6, 0, 6, 4),
            thresholds=[
                {"color": "green", "value": None},
                {"color": "orange", "value": RECOVERY_THRESHOLD},
                {"color": "red", "value": DEGRADED_THRESHOLD},
            ],
            extra_defaults={"min": 0, "max": 1, "decimals": 1},
        )
    )
    ps.append(
        panel(
            "stat",
            "Manual override active",
            "1 while someone has forced the degraded-mode flag by hand (nbmon flag set ...). Every override expires.",
            "none",
            [target("A", "max(nbmon_override_active)", "override")],
            (12, 0, 6, 4),
            thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1}],
            extra_defaults={
                "mappings": [
                    {
                        "type": "value",
                        "options": {
                            "0": {"text": "none", "color": "green", "index": 0},
                            "1": {"text": "OVERRIDE", "color": "orange", "index": 1},
                        },
                    }
                ]
            },
        )
    )
    ps.append(
        panel(
            "stat",
            "Estimated spend, last 24h",
            "Final images times the configured price over the last 24 hours (failures and thought images are not "
            "billed). An estimate, not the invoice.",
            "currencyUSD",
            [target("A", "sum(increase(nbmon_estimated_cost_usd_total[1d]))", "USD / 24h")],
            (18, 0, 6, 4),
            options={**_default_options("stat"), "colorMode": "value"},
            extra_defaults={"decimals": 2},
        )
    )
    # Row 1: traffic and the 503 ratio.
    ps.append(
        panel(
            "timeseries",
            "Request rate by error class",
            "HTTP attempts per second (SDK retries included) by model and error class (nbmon_requests_total). "
            "`ok` is a 200 with a final image; see docs/metrics.md for the others.",
            "reqps",
            [
                target(
                    "A", f"sum by (model, error_class) (rate(nbmon_requests_total[{RI}]))", "{{model}} {{error_class}}"
                )
            ],
            (0, 4, 12, 9),
            custom=line(fill=20, stacking="normal"),
        )
    )
    ps.append(
        panel(
            "timeseries",
            "503 ratio vs the 30% degraded-mode line",
            "503 share of the primary's and the fallback's HTTP attempts (left axis; roles from nbmon_model_info) "
            "against the daemon's 30% entry threshold (red dashed line). The shaded area (right axis) is "
            "nbmon_degraded_mode: 1 while the app runs on the fallback model. The daemon's own 1m window ratio "
            "(nbmon_error_ratio) of the primary is drawn dotted.",
            "percentunit",
            [
                target("A", with_role(RATIO_503, "primary"), "primary {{model}} 503 ratio"),
                target(
                    "B",
                    with_role('max by (model) (nbmon_error_ratio{error_class="overloaded", window="1m"})', "primary"),
                    "primary {{model}} daemon window ratio",
                ),
                target("C", "max(nbmon_degraded_mode)", "degraded mode"),
                target("D", with_role(RATIO_503, "fallback"), "fallback {{model}} 503 ratio"),
            ],
            (12, 4, 12, 9),
            custom={**line(fill=0), "thresholdsStyle": {"mode": "dashed"}, "axisSoftMax": 1},
            thresholds=[{"color": "transparent", "value": None}, {"color": "red", "value": DEGRADED_THRESHOLD}],
            overrides=[
                override(
                    "B",
                    {"custom.lineStyle": {"fill": "dot", "dash": [2, 4]}, "custom.lineWidth": 2},
                ),
                override(
                    "C",
                    {
                        "unit": "bool_on_off",
                        "custom.axisPlacement": "right",
                        "custom.drawStyle": "line",
                        "custom.lineInterpolation": "stepAfter",
                        "custom.fillOpacity": 25,
                        "custom.lineWidth": 0,
                        "custom.axisSoftMax": 1,
                        "custom.thresholdsStyle": {"mode": "off"},
                        "color": {"mode": "fixed", "fixedColor": "red"},
                        "min": 0,
                        "max": 1,
                    },
                ),
            ],
        )
    )
    # Row 2: resilience.
    ps.append(
        panel(
            "timeseries",
            "Retries per successful generation",
            "ImageGenerator retries on the same model divided by logical calls that ended ok, per model "
            '(nbmon_retries_total / nbmon_generations_total{error_class="ok"}). 0 is ideal; rising values mean '
            "the primary is struggling and calls cost more latency.",
            "none",
            [
                target(
                    "A",
                    f"sum by (model) (rate(nbmon_retries_total[{RI}]))"
                    f' / sum by (model) (rate(nbmon_generations_total{{error_class="ok"}}[{RI}]))',
                    "{{model}}",
                )
            ],
            (0, 13, 8, 8),
            custom=line(),
            extra_defaults={"decimals": 2},
        )
    )
    ps.append(
        panel(
            "timeseries",
            "Fallback rate by reason",
            "Calls moved from the primary to the fallback model per second, by reason (retries_exhausted, "
            "quota_exhausted, degraded_mode for a failed canary) (nbmon_fallbacks_total).",
            "cps",
            [
                target(
                    "A",
                    f"sum by (from_model, to_model, reason) (rate(nbmon_fallbacks_total[{RI}]))",
                    "{{from_model}} → {{to_model}} ({{reason}})",
                )
            ],
            (8, 13, 8, 8),
            custom=line(fill=20, stacking="normal"),
        )
    )
    ps.append(
        panel(
            "timeseries",
            "Latency p50 / p95 / p99 by model",
            "Duration of one HTTP attempt (streams: until the last chunk), quantiles estimated from "
            "nbmon_request_duration_seconds buckets (0.1 s to 600 s), all error classes.",
            "s",
            [
                target(
                    ref,
                    f"histogram_quantile({q}, sum by (model, le) (rate(nbmon_request_duration_seconds_bucket[{RI}])))",
                    f"{{{{model}}}} p{name}",
                )
                for ref, q, name in (("A", "0.5", "50"), ("B", "0.95", "95"), ("C", "0.99", "99"))
            ],
            (16, 13, 8, 8),
            custom=line(fill=0),
        )
    )
    # Row 3: images and money.
    ps.append(
        panel(
            "timeseries",
            "Images per hour: final vs thought",
            "Images returned over the last hour at each point, by model and kind (nbmon_images_total). `final` is "
            "billed; `thought` (interim) images are free.",
            "short",
            [target("A", "sum by (model, kind) (increase(nbmon_images_total[1h]))", "{{model}} {{kind}}")],
            (0, 21, 8, 8),
            custom=line(fill=20),
        )
    )
    ps.append(
        panel(
            "timeseries",
            "Estimated spend per hour",
            "Estimated USD spent over the last hour at each point, by model and image size "
            "(nbmon_estimated_cost_usd_total: final images times the configured price).",
            "currencyUSD",
            [
                target(
                    "A",
                    "sum by (model, image_size) (increase(nbmon_estimated_cost_usd_total[1h]))",
                    "{{model}} {{image_size}}",
                )
            ],
            (8, 21, 8, 8),
            custom=line(fill=20, stacking="normal"),
            extra_defaults={"decimals": 2},
        )
    )
    ps.append(
        panel(
            "timeseries",
            "Estimated spend per day",
            "Estimated USD spent over the trailing 24 hours at each point, by model (nbmon_estimated_cost_usd_total). "
            "Widen the time range to compare days.",
            "currencyUSD",
            [
                target(
                    "A",
                    "sum by (model) (increase(nbmon_estimated_cost_usd_total[1d]))",
                    "{{model}}",
                    interval="1h",
                )
            ],
            (16, 21, 8, 8),
            custom=line(fill=20, stacking="normal"),
            extra_defaults={"decimals": 2},
        )
    )
    # Row 4: blocks and 429s.
    ps.append(
        panel(
            "timeseries",
            "Safety and policy blocks by stage and reason",
            "Blocked generations per second (nbmon_blocks_total): stage `input` is promptFeedback.blockReason, "
            "`output` is the finishReason (IMAGE_SAFETY, PROHIBITED_CONTENT, RECITATION, ...).",
            "cps",
            [
                target(
                    "A",
                    f"sum by (stage, reason) (rate(nbmon_blocks_total[{RI}]))",
                    "{{stage}} {{reason}}",
                )
            ],
            (0, 29, 12, 8),
            custom=line(fill=20, stacking="normal"),
        )
    )
    ps.append(
        panel(
            "timeseries",
            "429s: rate_limited vs quota_exhausted vs billing_limited",
            "HTTP 429 attempts per second by model and class: `rate_limited` is a per-minute limit (transient, "
            "retry), `quota_exhausted` a per-day limit (lasts until midnight Pacific; fall back), `billing_limited` a "
            "spend cap or depleted prepaid credits (nothing helps until someone raises the cap or tops up).",
            "reqps",
            [
                target(
                    "A",
                    f'sum by (model, error_class) (rate(nbmon_requests_total{{code="429"}}[{RI}]))',
                    "{{model}} {{error_class}}",
                )
            ],
            (12, 29, 12, 8),
            custom=line(fill=20, stacking="normal"),
            overrides=[
                override("quota_exhausted", {"color": {"mode": "fixed", "fixedColor": "red"}}, by="byRegexp"),
                override("rate_limited", {"color": {"mode": "fixed", "fixedColor": "orange"}}, by="byRegexp"),
                override("billing_limited", {"color": {"mode": "fixed", "fixedColor": "purple"}}, by="byRegexp"),
            ],
        )
    )
    # Row 5: quota.
    ps.extend(quota_core_panels(y=37, selector=""))
    # Row 6: the models themselves (the catalog, what the app calls, what answers).
    ps.extend(model_panels(y=45))
    # Row 7: when to schedule batch work.
    ps.append(
        panel(
            "barchart",
            "503 ratio by hour of day (last 7 days)",
            "The 503 ratio of each hour over the last 7 days, averaged per hour of the day (dashboard time zone): "
            "schedule batch work in the low bars. Hourly ratios come from PromQL; the Format time and Group by "
            "transformations fold them onto hours 00 to 23.",
            "percentunit",
            [
                target(
                    "A",
                    'sum(increase(nbmon_requests_total{code="503"}[1h])) / sum(increase(nbmon_requests_total[1h]))',
                    "503 ratio",
                    interval="1h",
                )
            ],
            (0, 53, 24, 8),
            timeFrom="7d",
            hideTimeOverride=False,
            interval="1h",
            maxDataPoints=200,
            custom={"fillOpacity": 80, "lineWidth": 1, "gradientMode": "none", "axisSoftMin": 0},
            thresholds=[
                {"color": "green", "value": None},
                {"color": "orange", "value": RECOVERY_THRESHOLD},
                {"color": "red", "value": DEGRADED_THRESHOLD},
            ],
            extra_defaults={"color": {"mode": "thresholds"}},
            options={**_default_options("barchart"), "xField": "Time"},
            transformations=[
                {"id": "formatTime", "options": {"timeField": "Time", "outputFormat": "HH", "useTimezone": True}},
                {
                    "id": "groupBy",
                    "options": {
                        "fields": {
                            "Time": {"aggregations": [], "operation": "groupby"},
                            "503 ratio": {"aggregations": ["mean"], "operation": "aggregate"},
                        }
                    },
                },
                {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "Time", "desc": False}]}},
            ],
        )
    )
    # Row 8: notifications and the daemon's health.
    ps.append(
        panel(
            "timeseries",
            "Notification deliveries and failures",
            "Notifications handled per hour by channel and result (nbmon_notifications_total): `sent` delivered, "
            "`retried` will be tried again, `failed_permanent` rejected (4xx: check the webhook/routing key), "
            "`dropped` lost after 8 attempts or a full queue.",
            "short",
            [
                target(
                    "A",
                    "sum by (channel, result) (increase(nbmon_notifications_total[1h]))",
                    "{{channel}} {{result}}",
                )
            ],
            (0, 61, 8, 8),
            custom=line(fill=20, draw="bars"),
            overrides=[
                override("failed_permanent|dropped", {"color": {"mode": "fixed", "fixedColor": "red"}}, by="byRegexp"),
                override("sent", {"color": {"mode": "fixed", "fixedColor": "green"}}, by="byRegexp"),
            ],
        )
    )
    ps.append(
        panel(
            "timeseries",
            "Notification queue depth",
            "Notifications waiting in the daemon's SQLite outbox (nbmon_notification_queue_depth). Growing means a "
            "channel is not accepting deliveries.",
            "short",
            [target("A", "sum(nbmon_notification_queue_depth)", "queued")],
            (8, 61, 4, 8),
            custom=line(),
            thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 100}],
        )
    )
    ps.append(
        panel(
            "state-timeline",
            "Rule states",
            "The current state of each daemon rule (nbmon_rule_state): ok, pending, firing, recovering, probing.",
            "none",
            [target("A", "max by (rule, state) (nbmon_rule_state) == 1", "{{rule}}: {{state}}")],
            (12, 61, 12, 8),
            custom={"fillOpacity": 80, "lineWidth": 0},
            extra_defaults={"color": {"mode": "palette-classic"}},
        )
    )
    ps.append(
        panel(
            "timeseries",
            "Daemon source freshness",
            "Seconds since each daemon source (scrape targets, promql, quota poller) last answered successfully. "
            "/readyz answers 503 while the source is stale; a stale source means decisions on old data.",
            "s",
            [
                target(
                    "A",
                    "time() - max by (source) (nbmon_source_last_success_timestamp_seconds)",
                    "{{source}}",
                ),
                target("B", "time() - max(nbmon_quota_poll_last_success_timestamp_seconds)", "quota poller"),
            ],
            (0, 69, 12, 8),
            custom=line(fill=0),
            thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 120}],
        )
    )
    ps.append(
        panel(
            "timeseries",
            "Daemon poll errors",
            "Errors per second of the daemon's sources by reason (nbmon_source_errors_total: connect, timeout, "
            "http_status, parse, too_large), of the quota poller (nbmon_quota_poll_errors_total) and of its "
            "scheduled jobs (nbmon_job_errors_total).",
            "cps",
            [
                target(
                    "A", f"sum by (source, reason) (rate(nbmon_source_errors_total[{RI}]))", "{{source}} {{reason}}"
                ),
                target("B", f"sum by (reason) (rate(nbmon_quota_poll_errors_total[{RI}]))", "quota {{reason}}"),
                target("C", f"sum by (job) (rate(nbmon_job_errors_total[{RI}]))", "job {{job}}"),
            ],
            (12, 69, 12, 8),
            custom=line(fill=20, stacking="normal"),
        )
    )
    return ps


def model_panels(y: int) -> list[JSON]:
    """The catalog as the processes see it, calls to deprecated or retired models, reroutes, causes, tiers."""
    return [
        panel(
            "table",
            "Models: role and family",
            "Every model ID nbmon knows (its catalog and the configured IDs) with its role in this configuration "
            "(nbmon_model_info: primary, fallback, other) and its shutdown date where the catalog has one "
            "(nbmon_model_shutdown_timestamp_seconds). Two roles for one model: the processes disagree.",
            "dateTimeAsIso",
            [
                target(
                    "A",
                    "max by (model, role, family) (nbmon_model_info)",
                    "",
                    instant=True,
                    range=False,
                    format="table",
                ),
                target(
                    "B",
                    "max by (model) (nbmon_model_shutdown_timestamp_seconds) * 1000",
                    "",
                    instant=True,
                    range=False,
                    format="table",
                ),
            ],
            (0, y, 8, 8),
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True, "Value #A": True},
                        "indexByName": {},
                        "renameByName": {"Value #B": "shuts down"},
                    },
                },
            ],
        ),
        panel(
            "timeseries",
            "Deprecated and retired models called; reroutes",
            "Calls per hour that requested a model the catalog lists as deprecated or retired "
            "(nbmon_deprecated_model_calls_total), and calls answered by another model than requested "
            "(nbmon_model_reroutes_total: the response's modelVersion; billed at the served model's price).",
            "short",
            [
                target(
                    "A",
                    "sum by (model, lifecycle) (increase(nbmon_deprecated_model_calls_total[1h]))",
                    "{{model}} {{lifecycle}}",
                ),
                target(
                    "B",
                    "sum by (requested, served) (increase(nbmon_model_reroutes_total[1h]))",
                    "{{requested}} → {{served}}",
                ),
            ],
            (8, y, 8, 8),
            custom=line(fill=20, draw="bars"),
            overrides=[override("retired", {"color": {"mode": "fixed", "fixedColor": "red"}}, by="byRegexp")],
        ),
        panel(
            "timeseries",
            "Refusal causes and service tier downgrades",
            "Refusals per second by the cause the API gave (nbmon_error_causes_total: spend_cap, prepaid_credits, "
            "spend_rate_limit, limit_lowered = a tier drop, capacity_exhausted), and calls served at another "
            "service tier than requested (nbmon_service_tier_downgrades_total, e.g. priority served at standard).",
            "cps",
            [
                target(
                    "A",
                    f"sum by (model, error_class, cause) (rate(nbmon_error_causes_total[{RI}]))",
                    "{{model}} {{cause}}",
                ),
                target(
                    "B",
                    f"sum by (model, requested, served) (rate(nbmon_service_tier_downgrades_total[{RI}]))",
                    "{{model}} {{requested}} → {{served}}",
                ),
            ],
            (16, y, 8, 8),
            custom=line(fill=20, stacking="normal"),
        ),
    ]


def quota_core_panels(y: int, selector: str) -> list[JSON]:
    """Utilization per quota and the time to its reset (shared by both dashboards)."""
    sel = "{" + selector + "}" if selector else ""
    utilization = panel(
        "timeseries",
        "Quota utilization per quota",
        "Usage divided by limit for each Cloud Monitoring quota (nbmon_quota_utilization_ratio); the daemon warns "
        "at 80% and pages at 95%. Dynamic limits (Vertex shared quota) have no ratio.",
        "percentunit",
        [
            target(
                "A",
                f"max by (project, service, quota_metric, limit_name, window) (nbmon_quota_utilization_ratio{sel})",
                "{{project}} {{quota_metric}} {{limit_name}} ({{window}})",
            )
        ],
        (0, y, 14, 8),
        custom={**line(fill=0), "thresholdsStyle": {"mode": "dashed"}, "axisSoftMax": 1},
        thresholds=[
            {"color": "green", "value": None},
            {"color": "orange", "value": 0.8},
            {"color": "red", "value": 0.95},
        ],
    )
    reset = panel(
        "table",
        "Quota utilization and time to reset",
        "Per quota: current utilization and seconds until it resets (per-day quotas reset at midnight "
        "America/Los_Angeles) (nbmon_quota_utilization_ratio, nbmon_quota_seconds_until_reset).",
        "percentunit",
        [
            target(
                "A",
                f"max by (project, service, location, quota_metric, limit_name, window) "
                f"(nbmon_quota_utilization_ratio{sel})",
                "",
                instant=True,
                range=False,
                format="table",
            ),
            target(
                "B",
                f"max by (project, service, location, quota_metric, limit_name, window) "
                f"(nbmon_quota_seconds_until_reset{sel})",
                "",
                instant=True,
                range=False,
                format="table",
            ),
        ],
        (14, y, 10, 8),
        thresholds=[
            {"color": "green", "value": None},
            {"color": "orange", "value": 0.8},
            {"color": "red", "value": 0.95},
        ],
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": {"Value #A": "utilization", "Value #B": "resets in"},
                    "indexByName": {},
                },
            },
            {"id": "sortBy", "options": {"fields": {}, "sort": [{"field": "utilization", "desc": True}]}},
        ],
        overrides=[
            override(
                "utilization",
                {"custom.cellOptions": {"type": "color-background", "mode": "basic"}},
                by="byName",
            ),
            override("resets in", {"unit": "s"}, by="byName"),
        ],
    )
    return [utilization, reset]


def overview() -> JSON:
    return dashboard(
        "nbmon-overview",
        "nbmon: Gemini image API overview",
        "On-call overview of the Gemini image API as seen by nbmon: errors, degraded mode, retries and fallbacks, "
        "latency, images and spend, blocks, 429s, quota and the daemon's own health.",
        overview_panels(),
        [datasource_variable()],
        ["nbmon", "gemini"],
    )


# --------------------------------------------------------------------------- quota

PROJECT = 'project=~"$project"'


def quota() -> JSON:
    ps = quota_core_panels(y=0, selector=PROJECT)
    ps.append(
        panel(
            "timeseries",
            "Quota usage vs limit",
            "Absolute usage and limit per quota (nbmon_quota_usage, nbmon_quota_limit). Rate quotas count per "
            "minute or per day; allocation quotas are current holdings.",
            "short",
            [
                target(
                    "A",
                    f"max by (project, quota_metric, limit_name, window) (nbmon_quota_usage{{{PROJECT}}})",
                    "usage {{project}} {{quota_metric}} {{limit_name}} ({{window}})",
                ),
                target(
                    "B",
                    f"max by (project, quota_metric, limit_name, window) (nbmon_quota_limit{{{PROJECT}}})",
                    "limit {{project}} {{quota_metric}} {{limit_name}} ({{window}})",
                ),
            ],
            (0, 8, 12, 8),
            custom=line(fill=0),
            overrides=[override("B", {"custom.lineStyle": {"fill": "dash", "dash": [10, 10]}})],
        )
    )
    ps.append(
        panel(
            "table",
            "Quotas exceeded, blocked, dynamic or projected to run out",
            "Quotas in a notable state (1 = yes): exceeded now (nbmon_quota_exceeded), limit 0 (nbmon_quota_blocked), "
            "dynamic shared limit (nbmon_quota_dynamic_limit), or at today's pace running out before the reset "
            "(nbmon_quota_projected_exhaustion).",
            "bool_yes_no",
            [
                target(
                    ref,
                    f"max by (project, quota_metric, limit_name, window) ({metric}{{{PROJECT}}}) == 1",
                    "",
                    instant=True,
                    range=False,
                    format="table",
                )
                for ref, metric in (
                    ("A", "nbmon_quota_exceeded"),
                    ("B", "nbmon_quota_blocked"),
                    ("C", "nbmon_quota_dynamic_limit"),
                    ("D", "nbmon_quota_projected_exhaustion"),
                )
            ],
            (12, 8, 12, 8),
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {"Time": True},
                        "renameByName": {
                            "Value #A": "exceeded",
                            "Value #B": "blocked",
                            "Value #C": "dynamic",
                            "Value #D": "runs out before reset",
                        },
                        "indexByName": {},
                    },
                },
            ],
        )
    )
    ps.append(
        panel(
            "timeseries",
            "Cloud Monitoring vs shim: reconcile difference",
            "Cloud Monitoring's request usage since Pacific midnight minus what the shim counted "
            "(nbmon_quota_reconcile_difference). A lasting positive gap means callers that bypass the shim; Cloud "
            "Monitoring ingests minutes late, so read it over hours.",
            "short",
            [
                target(
                    "A",
                    f"max by (project, quota_metric) (nbmon_quota_reconcile_difference{{{PROJECT}}})",
                    "{{project}} {{quota_metric}}",
                )
            ],
            (0, 16, 12, 8),
            custom=line(fill=0),
        )
    )
    ps.append(
        panel(
            "timeseries",
            "Quota poller health",
            "Seconds since the last successful Cloud Monitoring poll (left) and poll errors per second by reason "
            "(nbmon_quota_poll_errors_total: permission_denied, unauthenticated, quota, unavailable, deadline, "
            "invalid, other). nbmon_quota_poller_enabled is 0 when no credentials were found.",
            "s",
            [
                target("A", "time() - max(nbmon_quota_poll_last_success_timestamp_seconds)", "since last success"),
                target("B", f"sum by (reason) (rate(nbmon_quota_poll_errors_total[{RI}]))", "errors {{reason}}"),
                target("C", "max(nbmon_quota_poller_enabled)", "poller enabled"),
            ],
            (12, 16, 12, 8),
            custom=line(fill=0),
            overrides=[
                override("B", {"unit": "cps", "custom.axisPlacement": "right", "custom.drawStyle": "bars"}),
                override("C", {"unit": "bool_yes_no", "custom.axisPlacement": "hidden"}),
            ],
        )
    )
    return dashboard(
        "nbmon-quota",
        "nbmon: Gemini quota per project",
        "Cloud Monitoring quota of the Gemini image API per project, as polled by the nbmon daemon.",
        ps,
        [
            datasource_variable(),
            query_variable("project", "Project", "label_values(nbmon_quota_utilization_ratio, project)"),
        ],
        ["nbmon", "gemini", "quota"],
    )


# --------------------------------------------------------------------------- output

PROVISIONING = """\
# Grafana file provisioning for nbmon's dashboards.
# Mount dashboards/ at /var/lib/grafana/dashboards/nbmon and this file under
# /etc/grafana/provisioning/dashboards/ (generated by dashboards/generate.py).
apiVersion: 1

providers:
  - name: nbmon
    orgId: 1
    folder: nbmon
    folderUid: nbmon
    type: file
    disableDeletion: false
    allowUiUpdates: false
    updateIntervalSeconds: 60
    options:
      path: /var/lib/grafana/dashboards/nbmon
      foldersFromFilesStructure: false
"""


def render(dash: JSON) -> str:
    return json.dumps(dash, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def outputs() -> dict[Path, str]:
    """Every generated file and its exact content."""
    return {
        HERE / "nbmon-overview.json": render(overview()),
        HERE / "nbmon-quota.json": render(quota()),
        HERE / "provisioning" / "dashboards.yml": PROVISIONING,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail if a committed file is not current")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")
    if stale:
        print("stale (run python dashboards/generate.py): " + ", ".join(str(p.relative_to(HERE.parent)) for p in stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
