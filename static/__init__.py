"""The browser dashboard, installed as ``waddle.dashboard``.

Only its built bundle (``dist/``, made by ``npm run build`` here or by ``pip install`` when npm
is on PATH; see setup.py) is package data; the sources in ``src/`` are not installed.
:mod:`waddle.server.routes.dashboard` serves it.
"""
