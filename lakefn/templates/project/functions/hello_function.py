def main(event):
    name = event.json().get("name", "world")
    return {"message": f"hello, {name}"}
