"""The project store: the only package that writes SQL (see db.py for the connection and write transactions)."""
