"""The `dogbreed` command line: thin typer shells over the workflows."""
