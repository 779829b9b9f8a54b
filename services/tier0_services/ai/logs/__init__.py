"""Access-log diagnostics: parse (combined format, JSON lines), aggregate exactly in Redis, query."""
