"""Storage: the tables, the engine and its migrations, the SQL that reads and writes them. Imports nothing of
the sync or the application."""
