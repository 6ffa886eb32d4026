"""Fault injection: a private PostgreSQL cluster, broker outages, worker kills, figures."""
