"""cvpt's version (``cvpt.__version__``, ``cvpt --version``), recorded in every file it saves
(:mod:`cvpt.formats`). Its own module, importing nothing, so that any module can read it
without importing the package's public names."""

__version__ = "0.1.0"
