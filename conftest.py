"""Root conftest: the self-tests drive the plugin through pytester inner sessions."""

pytest_plugins = ["pytester"]
