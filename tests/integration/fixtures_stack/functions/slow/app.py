import os
import time


def lambda_handler(event, context):
    time.sleep(float(event.get("sleep", 0)))
    return {
        "slept": event.get("sleep", 0),
        "pid": os.getpid(),
        "remaining": context.get_remaining_time_in_millis(),
    }
