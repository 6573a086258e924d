"""The contracts between services, each in one home imported by its producer and its consumers alike.

- `events`: an event as producers send it, as ingest accepts it, as it travels and is stored, and as a
  dead letter;
- `envelope`: several events in one events-topic message, packed and unpacked side by side;
- `live`: the live topic (stream -> gateway) and the WebSocket messages (gateway <-> dashboards);
- `dates`: date ranges and days as requests mean them;
- `storage`: table names, the settings readers and writers need, and the schema (`schema.sql`);
- `topics`: topic names and their specs;
- `limits`: sizes and bounds that more than one service checks.

Nothing here imports a transport (Kafka, ClickHouse or HTTP clients): those live beside this package in
`shared/` and import the contracts, never the other way round.
"""
