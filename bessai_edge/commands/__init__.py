"""One module per ``bessai`` subcommand; ``bessai_edge.cli`` lists and loads them."""
