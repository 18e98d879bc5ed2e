"""Runs every five minutes."""


def main(event):
    event.log.info("tick scheduled for %s (past due: %s)", event.scheduled_time, event.past_due)
    return {"scheduled_time": event.scheduled_time.isoformat(), "past_due": event.past_due}
