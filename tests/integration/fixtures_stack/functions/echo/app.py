"""Echoes the HTTP API v2 event back, plus what the function sees of its environment."""

import base64
import json
import os

import precedence
import sharedlib

ENV_KEYS = [
    "TABLE_NAME",
    "APP_NAME",
    "STAGE",
    "STAGE_LABEL",
    "GREETING",
    "QUEUE_URL",
    "QUEUE_ARN",
    "DLQ_NAME",
    "TABLE_ARN",
    "WHERE",
    "JOINED",
    "MAYBE",
    "UNKNOWN",
    "EXTRA",
    "B24_LOCAL",
    "AWS_REGION",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_TIMEOUT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_SQS",
    "AWS_ENDPOINT_URL_LAMBDA",
    "HOME_SECRET",
]
COLD = {"count": 0}


def lambda_handler(event, context):
    COLD["count"] += 1
    query = event.get("queryStringParameters") or {}
    mode = query.get("mode", "")
    print(f"echo {event.get('routeKey')} mode={mode!r}")
    if mode == "boom":
        raise RuntimeError("echo exploded")
    if mode == "raw":
        return {"just": "a dict"}
    if mode == "text":
        return "plain text"
    if mode == "binary":
        return {
            "statusCode": 200,
            "headers": {"content-type": "image/png"},
            "body": base64.b64encode(b"\x89PNG\r\n").decode(),
            "isBase64Encoded": True,
        }
    if mode == "bad":
        return {"statusCode": "teapot"}
    payload = {
        "event": event,
        "env": {k: os.environ.get(k) for k in ENV_KEYS},
        "layer": sharedlib.MARKER,
        "precedence": precedence.WHO,
        "cwd": os.getcwd(),
        "invocations": COLD["count"],
        "context": {
            "function_name": context.function_name,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining": context.get_remaining_time_in_millis(),
            "request_id": context.aws_request_id,
            "arn": context.invoked_function_arn,
            "log_group": context.log_group_name,
        },
    }
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/json", "x-echo": "yes", "x-num": 7},
        "cookies": ["a=1; Path=/", "b=2"],
        "body": json.dumps(payload),
    }
