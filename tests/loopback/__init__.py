"""A loopback OpenAI-compatible server for tests: real HTTP on 127.0.0.1, deterministic replies.

Use it from any test package::

    from tests.loopback.fixtures import loopback_server  # or rely on tests/conftest.py plugin

    def test_something(loopback_server):
        spec = ModelSpec(name="m", provider="openai", model_id="x",
                         base_url=loopback_server.base_url)
        loopback_server.configure(latency_s=0.2, fault_rates={"429": 0.05}, retry_after=0.1)
        loopback_server.script(["500", "timeout", "ok"])   # next three chat requests, in order
        ...
        assert loopback_server.stats()["calls"]["chat"] == 3
        assert loopback_server.stats()["max_in_flight"] <= 32

Replies (``state.reply_for``): a last user message containing ``[[reply: TEXT]]`` gets TEXT;
otherwise "True. That statement is correct." or "False. That statement is not correct." chosen
by the parity of the message's sha256 (``state.verdict_for(text)`` tells which), or always one of
them with ``configure(reply_mode="true"|"false")``; ``reply_mode="echo"`` returns the message.

Run-time configuration (``configure(**settings)`` or ``POST /_control`` with the same JSON):
- ``latency_s``, ``jitter_s``: delay of every chat request (asyncio.sleep; cheap at 32+ in flight)
- ``fault_rates``: {fault: probability}, drawn with ``fault_seed`` (reproducible)
- ``script([...])`` / ``POST /_control/script {"faults": [...]}``: faults for the next requests,
  in order, before any random draw. Faults: ok, 429, 503 (both with ``Retry-After:
  retry_after``), 500, 400, 401, 404, timeout (sleeps ``timeout_sleep_s`` then answers),
  malformed (invalid JSON as application/json), bad_shape (JSON, no choices), html.
- ``api_key``: when set, a wrong bearer token gets a 401 whose message repeats the header (as
  careless servers do), to check that the client scrubs the key from errors.
- ``batch_delay_s``, ``batch_line_error_rate``: /v1/files + /v1/batches emulation.
``reset()`` (or ``POST /_control/reset``) restores defaults and zeroes the counters;
``stats()``: calls per endpoint, faults served, in_flight, max_in_flight, script_left;
``requests()``: the chat request bodies received.

Servers: ``LoopbackServer.in_thread()`` (the fixture; ``.state`` is the live LoopbackState) or
``LoopbackServer.in_subprocess()`` / ``python -m tests.loopback --port N`` (its own process, so
its CPU is not counted against a benchmarked worker).

Extending: write tests/loopback/<name>.py exposing ``router`` (an APIRouter; the state is
``request.app.state.loopback``, with ``state.ext`` for your own data) and add
``"tests.loopback.<name>"`` to ``ROUTER_MODULES`` in server.py.
"""
