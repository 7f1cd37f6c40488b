"""The local stack's moto SQS with its linear receive and batch delete (b24stack/moto_sqs.py) answers
as moto does: each message handed out once while in flight, deleted ones gone, a deleted handle
deleted again without error, an unknown handle refused."""

from __future__ import annotations


def test_receive_and_batch_delete_keep_moto_semantics(services, member_id) -> None:
    sqs = services.client("sqs")
    queue = sqs.create_queue(QueueName=f"fast-{member_id[:12]}", Attributes={"VisibilityTimeout": "30"})[
        "QueueUrl"
    ]
    for start in range(0, 30, 10):
        sqs.send_message_batch(
            QueueUrl=queue, Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"} for i in range(10)]
        )
    got = []
    for _ in range(5):
        got += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert sorted(m["Body"] for m in got) == sorted(f"m{i}" for i in range(30))  # each once
    first = got[:10]
    answer = sqs.delete_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(first)],
    )
    assert len(answer["Successful"]) == 10 and not answer.get("Failed")
    again = sqs.delete_message_batch(
        QueueUrl=queue,
        Entries=[
            {"Id": "done", "ReceiptHandle": first[0]["ReceiptHandle"]},
            {"Id": "live", "ReceiptHandle": got[10]["ReceiptHandle"]},
            {"Id": "bogus", "ReceiptHandle": "not-a-handle"},
        ],
    )
    assert sorted(s["Id"] for s in again["Successful"]) == ["done", "live"]
    assert [(f["Id"], f["Code"]) for f in again["Failed"]] == [("bogus", "ReceiptHandleIsInvalid")]
    attrs = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessagesNotVisible"])
    assert attrs["Attributes"]["ApproximateNumberOfMessagesNotVisible"] == "19"
