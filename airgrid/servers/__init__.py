"""Private server instances (PostgreSQL, Mosquitto, Apache Kafka) that tests, benches and
`make chaos` start on free ports in directories of their own, and always stop."""
