import lakefn


def main(event: lakefn.HttpEvent) -> dict[str, str]:
    body = event.json()  # an empty body is {}; a body that is not JSON is a 400
    if not isinstance(body, dict):
        raise lakefn.HttpError(400, 'send a JSON object, like {"name": "Ada"}')
    name = body.get("name", "world")
    return {"message": f"hello, {name}"}
