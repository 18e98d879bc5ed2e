import lakefn

app = lakefn.create_app()
