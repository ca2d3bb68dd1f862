"""Platform adapters: each turns its platform's events into `IncomingMessage`s for the core."""
