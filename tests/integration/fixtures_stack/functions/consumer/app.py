"""SQS consumer: records each message in the table; a body of "fail" is reported as a batch item failure."""

import json
import os
import time

import boto3

TABLE = boto3.resource("dynamodb").Table(os.environ["TABLE_NAME"])


def lambda_handler(event, context):
    failures = []
    for record in event["Records"]:
        body = record["body"]
        count = record["attributes"]["ApproximateReceiveCount"]
        shape = {k: v for k, v in record.items() if k != "receiptHandle"}
        if body == "fail":
            TABLE.put_item(Item={"pk": "attempt#fail", "sk": count, "gsi1pk": "attempts"})
            failures.append({"itemIdentifier": record["messageId"]})
            continue
        TABLE.put_item(
            Item={
                "pk": f"msg#{body}",
                "sk": record["messageId"],
                "gsi1pk": "consumed",
                "record": json.dumps(shape),
                "batch": len(event["Records"]),
                "expires_at": int(time.time()) + 3600,
            }
        )
    print(f"consumed {len(event['Records'])} records, {len(failures)} failed")
    return {"batchItemFailures": failures}
