"""Settings: what can be configured (the spec), how it is read (flags, environment), and Ollama addresses."""
