"""waddle.server: the log-folder server (``waddle serve``). Installed from the top-level server/ folder."""
