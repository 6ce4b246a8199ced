"""Builtin plugins. They register through the ``resticm`` entry-point group like any plugin."""
