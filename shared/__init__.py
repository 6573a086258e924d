"""Code shared by every service: event model, settings, Kafka and ClickHouse clients, auth, errors."""
