"""What the model sees of a thread, and what it cost: planning each turn's window within a
token budget, the rolling summary, search over the whole thread, the turn's own SDK session
(stored all at once or not at all) and the meter that measures each request.

It builds on `bot.storage` alone and never imports `bot.runs` (`tests/test_layers.py`).
"""
