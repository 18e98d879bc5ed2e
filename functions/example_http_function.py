"""POST /run-example with {"name": "Ada"} -> {"hello": "Ada"}."""


def main(event):
    name = event.json().get("name", "world")
    event.log.info("greeting %s", name)
    return {"hello": name, "user": event.user}
