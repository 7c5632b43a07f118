"""torch-katas: learn PyTorch by making failing tests pass. Run `python -m katas --help`."""
