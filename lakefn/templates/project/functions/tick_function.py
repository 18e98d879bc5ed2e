def main(event):
    event.log.info("hourly tick for %s", event.scheduled_time)
    return {"scheduled_time": event.scheduled_time.isoformat()}
