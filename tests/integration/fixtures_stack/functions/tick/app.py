"""Scheduled job: returns the event it got and notes the run in the table."""

import json
import os

import boto3

TABLE = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


def lambda_handler(event, context):
    TABLE.put_item(Item={"pk": "tick", "sk": context.aws_request_id, "event": json.dumps(event)})
    return {"ticked": True, "event": event}
