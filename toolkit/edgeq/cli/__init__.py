"""edgeq's command line: one module per command group, no logic beyond argument handling."""
