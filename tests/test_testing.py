"""The process-wide test switch (threads, pools), settings that reset, Django, the plugin's restore."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import anyio
import pytest

import retrykit
import retrykit.stats as retrykit_stats
from retrykit import ConfigError, ErrorCategory, Policy, Strategy, _config, _scope
from retrykit.testing import Recorder, isolated, no_retry, no_wait, record, reset, set_testing

from .flaky import Flaky

pytest_plugins = ["pytester"]

FIVE = Policy(strategies={ErrorCategory.NETWORK_ERROR: Strategy.delay(5, max_retries=2)})


def _in_thread(fn: Callable[[], str]) -> str:
    result: list[str] = []
    errors: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as err:
            errors.append(err)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return result[0]


def _in_pool(fn: Callable[[], str]) -> str:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return pool.submit(fn).result()


RUNNERS = [pytest.param(_in_thread, id="thread"), pytest.param(_in_pool, id="thread-pool")]


@pytest.mark.parametrize("run", RUNNERS)
def test_set_testing_reaches_threads(run: Callable[[Callable[[], str]], str]) -> None:
    """Under set_testing, a retry in a thread or a pool worker skips its sleeps and is recorded."""
    flaky = Flaky.failing(2)
    started = time.monotonic()
    with set_testing(no_wait=True, record=True) as rec:
        assert "ok" == run(retrykit.retry(FIVE)(flaky))
    assert time.monotonic() - started < 1.0
    assert rec is not None
    assert [5.0, 5.0] == rec.sleeps
    assert 1 == len(rec.successes)


@pytest.mark.parametrize("run", RUNNERS)
def test_set_testing_no_retry_reaches_threads(run: Callable[[Callable[[], str]], str]) -> None:
    """set_testing(no_retry=True) makes one attempt per call in other threads too."""
    flaky = Flaky.failing(1)
    with set_testing(no_retry=True), pytest.raises(ConnectionResetError):
        run(retrykit.retry(FIVE)(flaky))
    assert 1 == flaky.calls


@pytest.mark.parametrize("run", RUNNERS)
def test_skipped_sleeps_count_for_deadlines_per_thread(run: Callable[[Callable[[], str]], str]) -> None:
    """A 7 s deadline stops a 5 s + 5 s schedule in a thread, though no time really passes."""
    flaky = Flaky.failing(5)
    with set_testing(no_wait=True, record=True) as rec, pytest.raises(ConnectionResetError):
        run(retrykit.retry(FIVE.replace(deadline=7))(flaky))
    assert rec is not None
    assert [5.0] == rec.sleeps
    assert ["deadline"] == [g.reason.value for g in rec.gave_up]


@pytest.mark.anyio
async def test_set_testing_holds_in_async_code(anyio_backend: str) -> None:
    """On asyncio and trio, set_testing skips the sleeps of a retried coroutine."""
    calls = []

    @retrykit.retry(FIVE)
    async def flaky() -> str:
        calls.append(1)
        await anyio.lowlevel.checkpoint()
        if len(calls) < 3:
            raise ConnectionResetError
        return "ok"

    with set_testing(no_wait=True, record=True) as rec, anyio.fail_after(2):
        assert "ok" == await flaky()
    assert rec is not None
    assert [5.0, 5.0] == rec.sleeps


@pytest.mark.parametrize("form", ["with", "restore"])
def test_set_testing_restores_what_it_changed(form: str) -> None:
    """On exit (or .restore()), the switches and the recorder in force before are back."""
    outer = Recorder()
    with set_testing(no_retry=True, record=outer):
        inner = set_testing(no_wait=True, record=True)
        if form == "with":
            with inner:
                assert inner.recorder is not outer
        else:
            inner.restore()
        mode = _scope._TESTING.get()
        assert mode is not None
        assert (True, False) == (mode.no_retry, mode.no_wait)
        with pytest.raises(ConnectionResetError):
            _in_thread(retrykit.retry(FIVE)(Flaky.failing(1)))
    assert _scope._TESTING.get() is None
    assert 1 == len(outer.gave_up)
    seen = len(outer.events)
    with no_wait():
        retrykit.retry(FIVE)(Flaky.failing(1))()
    assert seen == len(outer.events)  # no longer subscribed


def test_context_switches_take_precedence_and_stay_local() -> None:
    """A context-local no_wait()/record() inside set_testing keeps working as before."""
    with set_testing(no_retry=True), no_wait(), record() as rec, pytest.raises(ConnectionResetError):
        retrykit.retry(FIVE)(Flaky.failing(1))()
    assert ["testing_no_retry"] == [g.reason.value for g in rec.gave_up]
    with record() as rec:  # context-local: a plain thread is not reached (use set_testing)
        with no_wait():
            _in_thread(lambda: "ok")
    assert [] == rec.events


@pytest.mark.parametrize(
    ("options", "argument"),
    [({"no_wait": "yes"}, "no_wait"), ({"no_retry": 1}, "no_retry"), ({"record": []}, "record")],
)
def test_set_testing_refuses_bad_values(options: dict[str, object], argument: str) -> None:
    """A value that is not a bool (or a Recorder for record) is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=argument):
        set_testing(**options)  # type: ignore[arg-type]
    assert _scope._TESTING.get() is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({}, None), ({"RETRYKIT_NETWORK_MAX_RETRIES": "2"}, 2)],
    ids=["built-in", "environment"],
)
def test_reset_goes_back_to_the_settings_of_import(
    monkeypatch: pytest.MonkeyPatch, environ: dict[str, str], expected: int | None
) -> None:
    """reset() drops configure()'s changes and applies the RETRYKIT_* environment again."""
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    retrykit.configure(enabled=False, network_max_retries=7)
    reset()
    assert _config.settings.enabled is True
    assert expected == _config.settings.category_overrides.get(ErrorCategory.NETWORK_ERROR, {}).get(
        "max_retries"
    )


def _network_retries() -> int | None:
    strategy = retrykit.get_preset("default").strategy_for(ErrorCategory.NETWORK_ERROR)
    return strategy.max_retries


@pytest.fixture
def django_settings() -> object:
    """Django's settings, configured once for this process with a RETRYKIT dict."""
    pytest.importorskip("django")
    from django.conf import settings

    if not settings.configured:
        settings.configure(RETRYKIT={"NETWORK_MAX_RETRIES": 2})
    return settings


def test_django_override_settings_is_honoured(django_settings: object) -> None:
    """override_settings(RETRYKIT=...) changes retrykit's settings, and the exit puts them back."""
    from django.test import override_settings

    retrykit.configure(default_base_delay=0.25)
    retrykit.configure_from_settings(django_settings)
    assert 2 == _network_retries()
    with override_settings(RETRYKIT={"NETWORK_MAX_RETRIES": 4, "ENABLED": False}):
        assert (4, False) == (_network_retries(), _config.settings.enabled)
        assert 0.25 == _config.settings.strategy_defaults["base_delay"]  # applied over the base
        with override_settings(RETRYKIT={"NETWORK_MAX_RETRIES": 1}):
            assert (1, True) == (_network_retries(), _config.settings.enabled)
        assert (4, False) == (_network_retries(), _config.settings.enabled)
    assert (2, True) == (_network_retries(), _config.settings.enabled)


def test_django_bad_override_is_refused_and_changes_nothing(django_settings: object) -> None:
    """An invalid RETRYKIT in override_settings raises ConfigError and leaves the settings as they were."""
    from django.test import override_settings

    retrykit.configure_from_settings(django_settings)
    with pytest.raises(ConfigError, match="RETRYKIT_NETWORK_MAX_RETRIES"):
        with override_settings(RETRYKIT={"NETWORK_MAX_RETRIES": "many"}):
            pass  # pragma: no cover
    assert 2 == _network_retries()


def test_django_is_not_imported_by_retrykit(pytester: pytest.Pytester) -> None:
    """import retrykit (and configuring it) never imports Django."""
    import sys

    code = "import sys, retrykit; retrykit.configure(enabled=True); print('django' in sys.modules)"
    result = pytester.run(sys.executable, "-c", code)
    assert (0, ["False"]) == (result.ret, result.outlines)


LEAKY_TESTS = """
import retrykit
import retrykit.stats as retrykit_stats
from retrykit import _config, _scope
from retrykit.testing import set_testing


def create_app(config):
    retrykit.configure_from_settings(config)


def test_a_configures():
    retrykit.configure(network_max_retries=9)
    create_app({"RETRYKIT_ENABLED": False})
    set_testing(no_wait=True, record=True)
    assert _config.settings.enabled is False


def test_b_sees_the_settings_of_before():
    assert _config.settings.enabled is True
    assert {} == _config.settings.category_overrides
    assert _scope._TESTING.get() is None
    assert not retrykit._events._sinks or all(
        type(s).__name__ != "Recorder" for s in retrykit._events._sinks
    )
"""


@pytest.mark.parametrize(("ini", "outcome"), [("", {"passed": 2}), ("false", {"passed": 1, "failed": 1})])
def test_plugin_restores_settings_after_each_test(
    pytester: pytest.Pytester, ini: str, outcome: dict[str, int]
) -> None:
    """configure(), an app factory's settings and set_testing() do not leak into the next test."""
    pytester.makepyfile(test_leak=LEAKY_TESTS)
    if ini:
        pytester.makeini(f"[pytest]\nretrykit_restore_settings = {ini}\n")
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(**outcome)


def test_process_recorder_fixture(retrykit_process_recorder: Recorder) -> None:
    """The retrykit_process_recorder fixture records a pool worker's retries without sleeping."""
    assert "ok" == _in_pool(retrykit.retry(FIVE)(Flaky.failing(1)))
    assert [5.0] == retrykit_process_recorder.sleeps


def test_no_retry_is_still_context_local() -> None:
    """no_retry() does not reach a plain thread (set_testing is the process-wide switch)."""
    flaky = Flaky.failing(1)
    with no_retry(), set_testing(no_wait=True):
        assert "ok" == _in_thread(retrykit.retry(FIVE)(flaky))
    assert 2 == flaky.calls


def _open_a_breaker() -> Callable[[], object]:
    """Open the breaker 'isolated-payments'; afterwards, whether a call through it is sent."""
    sent: list[int] = []

    @retrykit.retry(max_attempts=1, breaker={"key": "isolated-payments", "min_throughput": 1})
    def pay() -> None:
        sent.append(1)
        raise ConnectionResetError("down")

    for _ in range(2):
        with pytest.raises((ConnectionResetError, retrykit.CircuitOpen)):
            pay()

    def sent_after() -> object:
        before = len(sent)
        with pytest.raises((ConnectionResetError, retrykit.CircuitOpen)):
            pay()
        return len(sent) > before

    return sent_after


def _count_a_failure() -> Callable[[], object]:
    """Count a failed attempt in the statistics; afterwards, the failed attempts counted."""
    flaky = retrykit.retry(max_attempts=1)(Flaky.failing(1))
    with pytest.raises(ConnectionError):
        flaky()
    return lambda: retrykit_stats.analyze().total_errors


def _register_a_preset() -> Callable[[], object]:
    """Register the preset 'isolated-preset'; afterwards, whether it is known."""
    retrykit.register_preset("isolated-preset", Policy(max_attempts=2))
    return lambda: _known("isolated-preset")


def _known(name: str) -> bool:
    """Whether *name* is a preset now."""
    try:
        retrykit.get_preset(name)
    except ConfigError:
        return False
    return True


def _configure() -> Callable[[], object]:
    """Switch retrykit off; afterwards, whether it is on."""
    retrykit.configure(enabled=False)
    return lambda: not _config.settings.enabled


@pytest.mark.parametrize(
    ("change", "after"),
    [
        pytest.param(_open_a_breaker, True, id="a breaker opened inside lets calls through after"),
        pytest.param(_count_a_failure, 0, id="statistics counted inside are gone"),
        pytest.param(_register_a_preset, False, id="a preset registered inside is gone"),
        pytest.param(_configure, False, id="settings changed inside are the built-in ones again"),
    ],
)
def test_isolated_leaves_nothing_of_its_block(
    change: Callable[[], Callable[[], object]], after: object
) -> None:
    """What a block under ``isolated()`` changes in the process is gone after it."""
    with isolated():
        observe = change()
    assert after == observe()
