"""SQL of the server, one module per resource: keyword-only functions that take a session or a
connection. Routes call these and nothing else touches the database."""
