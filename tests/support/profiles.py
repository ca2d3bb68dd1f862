"""The profiles the profile tests run: a support desk on its own model server beside a general
assistant on the global one, as `BOT_PROFILES` would give them."""

from __future__ import annotations

from bot.profiles.spec import DEFAULT, Admins, ProfileBook, ProfileSpec, Rule

SUPPORT_TEXT = "You are the support desk of Acme. Remember each customer's order number."
GENERAL_TEXT = "You are the friendly general assistant of Acme."


def support_and_general(
    support_url: str,
    rules: tuple[Rule, ...],
    *,
    admins: Admins | None = None,
    support_tools: tuple[str, ...] | None = None,
    general_tools: tuple[str, ...] | None = None,
) -> ProfileBook:
    """`support` (model `support-model` at `support_url`, no key) and `general` (model
    `general-model` on the global server), picked by `rules`, as read from `profiles.toml`."""
    return ProfileBook(
        source="profiles.toml",
        profiles={
            DEFAULT: ProfileSpec(DEFAULT),
            "support": ProfileSpec(
                "support",
                instructions=SUPPORT_TEXT,
                model="support-model",
                base_url=support_url,
                model_api="chat_completions",
                tools=support_tools,
            ),
            "general": ProfileSpec(
                "general", instructions=GENERAL_TEXT, model="general-model", tools=general_tools
            ),
        },
        rules=rules,
        admins=admins or Admins(),
    )
