"""One module per benchmark section; each exposes run(env) -> list[Row]."""
