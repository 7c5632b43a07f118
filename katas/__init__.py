"""torch-katas: learn PyTorch by making failing tests pass. Run `python -m katas --help`."""


def load_ipython_extension(ipython) -> None:
    """`%load_ext katas` in Jupyter or Colab: the `%%kata EXERCISE` cell magic."""
    # Imported here, not at the top: `import katas` stays cheap for the command line and pytest.
    from katas._harness.notebook_magic import load_ipython_extension as load

    load(ipython)
