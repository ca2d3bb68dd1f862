"""Running the bot for a team, live: metrics and the observer seam, health and readiness,
logs, and the daily token budget per person."""
