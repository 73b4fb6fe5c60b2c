"""One module per runtime_env field."""
