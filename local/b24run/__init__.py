"""``make run``: the local stack, plus the Bitrix24 simulator when no app credentials are set."""
