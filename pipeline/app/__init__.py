"""The application: the command line, the daemon, the demo, status, logging and signals."""
