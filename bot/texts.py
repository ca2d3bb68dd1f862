"""The short lines the bot itself says, written once for the core and every adapter."""

from __future__ import annotations

GENERIC = "Sorry, something went wrong while I was answering. Please try again."
SHUTTING_DOWN = "I'm restarting right now. Please send that again in a moment."
EMPTY_MESSAGE = "I got an empty message. Say something, or try {prefix}help."
SLOW_DOWN = "You're sending messages faster than I can answer. Please wait {seconds}s."
BUSY = "I'm still busy with an earlier message in this thread. Please send that again in a moment."
OVER_BUDGET = (
    "You've used today's budget of {limit:,} tokens; it resets at 00:00 UTC (in {left}). "
    "Commands like {prefix}usage still work."
)
NOT_HERE = "Sorry, I'm not set up to answer you here."
"""To someone the platform's allow-lists leave out, when they use a command or a button."""
