"""Calls other functions through the Lambda API with plain boto3, as deployed code would."""

import json
import os

import boto3

LAMBDA = boto3.client("lambda")


def lambda_handler(event, context):
    sync = LAMBDA.invoke(
        FunctionName=event.get("target") or os.environ["ECHO_FUNCTION"],
        InvocationType="RequestResponse",
        Payload=json.dumps(event.get("payload") or {}),
    )
    fired = LAMBDA.invoke(
        FunctionName=os.environ["TICK_ARN"], InvocationType="Event", Payload=b'{"from": "caller"}'
    )
    return {
        "status": sync["StatusCode"],
        "function_error": sync.get("FunctionError"),
        "payload": json.loads(sync["Payload"].read()),
        "event_status": fired["StatusCode"],
    }
