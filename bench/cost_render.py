"""The cost model's tables as Markdown: printed by bench/cost_model.py and kept in docs/cost.md.

Kept apart from the arithmetic so the model stays short; the text is deterministic for the same results,
template, settings and prices (no clock), which is what lets a unit test hold the doc in sync.
"""

from __future__ import annotations

from typing import Any

from cost_prices import PRICES_DATE, PRICES_SOURCE

GROUPS = ["events", "probes", "audits", "keep-alive", "re-checks", "schedules", "storage", "fixed"]


def usd(x: float) -> str:
    if 0 < abs(x) < 0.01:
        return f"${x:.4f}"
    return f"${x:,.2f}"


def qty(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def render(model: Any) -> str:
    from cost_model import PORTALS, PROFILES

    out: list[str] = []
    w = out.append
    bills = {name: model.month(n) for name, n in PROFILES.items()}
    boxes = {name: model.always_on(n) for name, n in PROFILES.items()}
    names = list(PROFILES)
    head = " | ".join(f"{n} ({PROFILES[n]:,}/day)" for n in names)
    w("### Cost per million events\n")
    w("The events' own path: API Gateway, intake and worker Lambdas (GB-s included), SQS, DynamoDB, logs")
    w("and traces; fleet costs (probes, audits, keep-alive) are per portal, below.\n")
    w(f"| | {head} | storm (one portal's mass change) |")
    w("|---|" + "---:|" * (len(names) + 1))
    w(
        "| per million events | "
        + " | ".join(usd(model.per_million(PROFILES[n])) for n in names)
        + f" | {usd(model.per_million_storm())} |"
    )
    untraced = model.with_price("xray_trace", 0.0)
    w(
        "| ... with `Tracing` off | "
        + " | ".join(usd(untraced.per_million(PROFILES[n])) for n in names)
        + f" | {usd(untraced.per_million_storm())} |"
    )
    w("")
    w(f"### Per {PORTALS:,} portals per month\n")
    w(f"| | {head} |")
    w("|---|" + "---:|" * len(names))
    w("| events a month | " + " | ".join(qty(PORTALS * PROFILES[n] * 730 / 24) for n in names) + " |")
    for group in GROUPS:
        w(f"| {group} | " + " | ".join(usd(bills[n].total(group)) for n in names) + " |")
    w("| **Lambda GB-s (all functions)** | " + " | ".join(qty(bills[n].gb_s()) for n in names) + " |")
    w("| **total** | " + " | ".join(f"**{usd(bills[n].total())}**" for n in names) + " |")
    w("| per portal | " + " | ".join(usd(bills[n].total() / PORTALS) for n in names) + " |")
    w(
        "| total with `Tracing` off | "
        + " | ".join(usd(untraced.month(PROFILES[n]).total()) for n in names)
        + " |"
    )
    w("")
    w("### Side by side with an always-on queue worker (the starter kit's shape)\n")
    w(f"| per month, {PORTALS:,} portals | {head} |")
    w("|---|" + "---:|" * len(names))
    w("| this bundle (serverless, above) | " + " | ".join(usd(bills[n].total()) for n in names) + " |")
    w(
        "| one small box: EC2 t4g.small, RabbitMQ + worker + MySQL on it | "
        + " | ".join(
            f"{usd(boxes[n]['vm'])} ({boxes[n]['boxes']} box{'es' if boxes[n]['boxes'] > 1 else ''})"
            for n in names
        )
        + " |"
    )
    w(
        "| managed always-on: Fargate 0.5 vCPU/1 GB + RDS db.t4g.micro + ALB | "
        + " | ".join(usd(boxes[n]["managed"]) for n in names)
        + " |"
    )
    w(
        "| ratio bundle / small box | "
        + " | ".join(f"{bills[n].total() / boxes[n]['vm']:.2f}x" for n in names)
        + " |"
    )
    w("")
    typical = next(n for n in names if n == "typical")
    w(f"### Every line of the {typical} profile\n")
    w("| part | item | quantity | unit price per | cost |")
    w("|---|---|---:|---|---:|")
    for group, item, q, per, cost in bills[typical].lines:
        w(f"| {group} | {item} | {qty(q)} | {per} | {usd(cost)} |")
    w("")
    w("### Inputs: measured or assumed\n")
    w("| input | value | unit | source |")
    w("|---|---:|---|---|")
    for key, inp in sorted(model.inputs.items(), key=lambda kv: (not kv[1].measured, kv[0])):
        w(f"| `{key}` | {inp.value:.4g} | {inp.unit} | {inp.source} |")
    pol, facts = model.pol, model.facts
    w("")
    schedules = ", ".join(f"`{s}`" for s in facts["schedules"])
    w(
        f"From the layer's settings defaults: audit every {pol['audit_interval_s']:.0f} s, "
        f"boxes probed every {pol['probe_box_s']:.0f} s and cloud portals every "
        f"{pol['probe_cloud_s']:.0f} s, keep-alive refresh every {pol['keepalive_days']:.0f} days. "
        f"From template.yaml: {facts['functions']} functions at {facts['memory_gb'] * 1024:.0f} MB arm64, "
        f"{facts['alarms']} alarms, {facts['dashboards']} dashboard(s), {facts['kms_keys']} customer "
        f"managed keys, logs kept {facts['log_retention_days']} days, schedules {schedules}."
    )
    w("")
    w(f"### Prices ({PRICES_DATE}, {PRICES_SOURCE})\n")
    w("| price | USD | per | checked |")
    w("|---|---:|---|---|")
    for key, p in model.p.items():
        w(f"| [`{key}`]({p.page}) | {p.usd:.10g} | {p.per} | {p.checked} |")
    w("")
    return "\n".join(out)
