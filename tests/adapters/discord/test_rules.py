"""When the Discord bot answers and which thread a message goes to: the pure rules, as tables."""

from __future__ import annotations

from adapters.discord.rules import AccessPolicy, MessageFacts, Place, Route, decide, thread_key

# ----- keys ----------------------------------------------------------------------------------


def test_thread_keys() -> None:
    assert thread_key(10, 20) == "discord:10:20"
    assert thread_key(None, 40) == "discord:dm:40"


# ----- rules ---------------------------------------------------------------------------------

CHANNEL = Place(guild_id=1, channel_id=20)
THREAD = Place(guild_id=1, channel_id=30, parent_id=20)
DM = Place(guild_id=None, channel_id=40)
EVERYONE = AccessPolicy()


def facts(place: Place = CHANNEL, **changes: object) -> MessageFacts:
    values: dict[str, object] = {
        "place": place,
        "author_id": 5,
        "author_is_bot": False,
        "is_self": False,
        "mentioned": False,
        "in_thread": place.parent_id is not None,
    }
    values.update(changes)
    return MessageFacts(**values)  # type: ignore[arg-type]


def answers(f: MessageFacts, policy: AccessPolicy = EVERYONE, **options: bool) -> bool:
    kwargs = {"reply_to_bots": False, "open_threads": False, **options}
    return decide(f, policy, **kwargs).answer


def test_when_the_bot_answers() -> None:
    assert not answers(facts())
    assert answers(facts(mentioned=True))
    assert answers(facts(DM))
    assert not answers(facts(THREAD))
    assert answers(facts(THREAD, mentioned=True))
    assert answers(facts(THREAD, thread_owned_by_bot=True))
    assert answers(facts(THREAD, thread_active=True))
    assert not answers(facts(DM, is_self=True))
    assert not answers(facts(DM, author_is_bot=True))
    assert answers(facts(DM, author_is_bot=True), reply_to_bots=True)
    assert not answers(facts(DM, is_self=True, author_is_bot=True), reply_to_bots=True)
    assert not answers(facts(DM, is_chat=False))


def test_open_threads_only_for_channel_mentions() -> None:
    options = {"reply_to_bots": False, "open_threads": True}
    assert decide(facts(mentioned=True), EVERYONE, **options) == Route(True, open_thread=True)
    assert not decide(facts(THREAD, mentioned=True), EVERYONE, **options).open_thread
    assert not decide(facts(DM), EVERYONE, **options).open_thread


def test_allow_lists() -> None:
    guilds = AccessPolicy(guilds=frozenset({1}))
    assert guilds.permits(CHANNEL, 5)
    assert not guilds.permits(Place(2, 20), 5)
    assert not guilds.permits(DM, 5)

    channels = AccessPolicy(channels=frozenset({20}))
    assert channels.permits(CHANNEL, 5)
    assert channels.permits(THREAD, 5)  # a thread of an allowed channel
    assert not channels.permits(Place(1, 21), 5)
    assert not channels.permits(DM, 5)

    users = AccessPolicy(users=frozenset({5}))
    assert users.permits(CHANNEL, 5)
    assert not users.permits(CHANNEL, 6)
    assert users.permits(DM, 5)

    roles = AccessPolicy(roles=frozenset({77}))
    assert roles.permits(CHANNEL, 6, [77])
    assert not roles.permits(CHANNEL, 6, [78])
    assert not roles.permits(DM, 6)

    # Restricted to one guild, a named user may still DM the bot.
    mixed = AccessPolicy(guilds=frozenset({1}), users=frozenset({5}))
    assert mixed.permits(DM, 5)
    assert not mixed.permits(DM, 6)

    assert not answers(facts(mentioned=True, author_id=6), users)
    assert (
        decide(
            facts(mentioned=True, author_id=6), users, reply_to_bots=False, open_threads=False
        ).reason
        == "outside the allow-lists"
    )
