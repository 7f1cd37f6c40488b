"""Public on-demand prices the cost model (bench/cost_model.py) multiplies the measured counts by.

Why a separate file: prices change more often than the model, and whoever updates them should touch
nothing else. Every price is us-east-1, on-demand, without the free tier, in US dollars, as published
by AWS; update here, then run ``python bench/cost_model.py --write-doc``.

``checked`` says how each figure was taken on PRICES_DATE: "aws" - read on an AWS page or an AWS
announcement found by the search tool that day; "secondary" - read on a recent third-party pricing
guide quoting the AWS page; "unverified" - from memory of the AWS pricing page, not re-checked that day
(docs/cost.md shows the mark next to the figure, so a reader knows which to check first).
"""

from __future__ import annotations

from dataclasses import dataclass

PRICES_DATE = "2026-12-05"
PRICES_SOURCE = "as published by AWS (us-east-1, on-demand, free tier not deducted); update here"


@dataclass(frozen=True)
class Price:
    usd: float
    per: str
    checked: str  # "aws" | "secondary" | "unverified"
    page: str


def _p(usd: float, per: str, checked: str, page: str) -> Price:
    return Price(usd, per, checked, page)


LAMBDA = "https://aws.amazon.com/lambda/pricing/"
APIGW = "https://aws.amazon.com/api-gateway/pricing/"
SQS = "https://aws.amazon.com/sqs/pricing/"
DDB = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
SCHED = "https://aws.amazon.com/eventbridge/pricing/"
CW = "https://aws.amazon.com/cloudwatch/pricing/"
KMS = "https://aws.amazon.com/kms/pricing/"
SSM = "https://aws.amazon.com/systems-manager/pricing/"
XRAY = "https://aws.amazon.com/xray/pricing/"
EC2 = "https://aws.amazon.com/ec2/pricing/on-demand/"
EBS = "https://aws.amazon.com/ebs/pricing/"
VPC = "https://aws.amazon.com/vpc/pricing/"
FARGATE = "https://aws.amazon.com/fargate/pricing/"
RDS = "https://aws.amazon.com/rds/mysql/pricing/"
ELB = "https://aws.amazon.com/elasticloadbalancing/pricing/"

PRICES: dict[str, Price] = {
    # -- the serverless stack (template.yaml: arm64, 256 MB unless a function says otherwise)
    "lambda_request": _p(0.20 / 1e6, "request", "secondary", LAMBDA),
    "lambda_gb_s_arm": _p(
        0.0000133334, "GB-second (arm64, first 7.5 billion GB-s a month)", "secondary", LAMBDA
    ),
    "http_api_request": _p(1.00 / 1e6, "request (HTTP API, first 300 million a month)", "secondary", APIGW),
    "sqs_request": _p(0.40 / 1e6, "request (standard queue, per 64 KB chunk)", "secondary", SQS),
    "ddb_write": _p(0.625 / 1e6, "write request unit (on-demand, since Nov 2024)", "secondary", DDB),
    "ddb_read": _p(0.125 / 1e6, "read request unit (on-demand, since Nov 2024)", "secondary", DDB),
    "ddb_storage_gb": _p(0.25, "GB-month (standard table class)", "unverified", DDB),
    "ddb_pitr_gb": _p(0.20, "GB-month of point-in-time recovery (continuous backups)", "unverified", DDB),
    "scheduler_invocation": _p(
        1.00 / 1e6, "invocation (EventBridge Scheduler, after 14 million free)", "secondary", SCHED
    ),
    "logs_ingest_gb": _p(0.50, "GB ingested (CloudWatch Logs, standard class)", "secondary", CW),
    "logs_store_gb": _p(0.03, "GB-month stored (CloudWatch Logs)", "unverified", CW),
    "metric_month": _p(0.30, "custom metric-month (EMF metrics, first 10,000)", "secondary", CW),
    "alarm_month": _p(0.10, "standard-resolution alarm metric-month", "unverified", CW),
    "dashboard_month": _p(3.00, "dashboard-month", "secondary", CW),
    "kms_key_month": _p(1.00, "customer managed key-month", "aws", KMS),
    "kms_request": _p(0.03 / 1e4, "request (symmetric)", "secondary", KMS),
    "ssm_get_parameter": _p(0.0, "GetParameter, standard parameter and throughput (free)", "unverified", SSM),
    "xray_trace": _p(5.00 / 1e6, "trace recorded", "aws", XRAY),
    # -- the always-on comparison
    "ec2_t4g_small_hour": _p(0.0168, "hour (t4g.small, 2 vCPU, 2 GiB, Linux)", "unverified", EC2),
    "ebs_gp3_gb": _p(0.08, "GB-month (gp3)", "unverified", EBS),
    "ebs_snapshot_gb": _p(0.05, "GB-month (snapshot, standard)", "unverified", EBS),
    "public_ipv4_hour": _p(0.005, "hour per public IPv4 address", "secondary", VPC),
    "fargate_vcpu_hour_arm": _p(0.03238, "vCPU-hour (Linux/ARM)", "secondary", FARGATE),
    "fargate_gb_hour_arm": _p(0.00356, "GB-hour (Linux/ARM)", "secondary", FARGATE),
    "rds_t4g_micro_hour": _p(0.016, "hour (db.t4g.micro MySQL, single-AZ)", "secondary", RDS),
    "rds_storage_gb": _p(0.115, "GB-month (gp3)", "secondary", RDS),
    "alb_hour": _p(0.0225, "hour (Application Load Balancer)", "unverified", ELB),
    "alb_lcu_hour": _p(0.008, "LCU-hour", "unverified", ELB),
}
