"""Speech keywords: spoken-word classification from raw audio (FSDD, Speech Commands)."""
