"""Signal handling around a command's start, with real signals sent to this process: inside
``signals_cancel`` (a whole ``mlproj run``, a whole sweep), a ``signals_deferred`` block holds
every signal without swapping handlers; outside one, Ctrl-C and SIGTERM act at once."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from mlproj.local_run import supervisor
from mlproj.local_run.supervisor import Cancelled, signals_cancel, signals_deferred


@pytest.fixture
def handler_changes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The signals whose handler is set while the test runs."""
    changed: list[int] = []
    real = signal.signal

    def counting(signum: int, handler: object) -> object:
        changed.append(signum)
        return real(signum, handler)  # type: ignore[arg-type]

    monkeypatch.setattr(signal, "signal", counting)
    yield changed


def test_a_deferred_block_inside_signals_cancel_holds_ctrl_c_and_sigterm() -> None:
    with signals_cancel():
        with signals_deferred() as pending:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGTERM)
            reached = True  # neither signal unwound the block
        assert reached
        assert pending == [signal.SIGINT, signal.SIGTERM]


def test_ctrl_c_and_sigterm_act_at_once_outside_a_deferred_block() -> None:
    with signals_cancel():
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        with pytest.raises(Cancelled):
            signal.raise_signal(signal.SIGTERM)
        with signals_deferred():
            pass
        with pytest.raises(KeyboardInterrupt):  # a block that ended holds nothing
            signal.raise_signal(signal.SIGINT)


def test_deferred_blocks_inside_signals_cancel_set_no_handler(handler_changes: list[int]) -> None:
    with signals_cancel():
        installed = len(handler_changes)
        for _ in range(10):  # two per sweep trial
            with signals_deferred():
                pass
        assert len(handler_changes) == installed


def test_handlers_are_given_back_when_signals_cancel_ends() -> None:
    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not reached")

    before = signal.signal(signal.SIGINT, mine)
    try:
        with signals_cancel():
            assert signal.getsignal(signal.SIGINT) is not mine
        assert signal.getsignal(signal.SIGINT) is mine
        assert supervisor._outer_sigint is None
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_sigint_handler_set_inside_signals_cancel_is_still_held(
    handler_changes: list[int],
) -> None:
    # Someone replaced SIGINT's handler inside the block: deferring then swaps handlers.
    noted: list[int] = []
    with signals_cancel():
        previous = signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
        try:
            with signals_deferred() as pending:
                signal.raise_signal(signal.SIGINT)
            assert pending == [signal.SIGINT]
            assert noted == []
        finally:
            signal.signal(signal.SIGINT, previous)


def test_ctrl_c_under_signals_cancel_calls_the_handler_that_was_there() -> None:
    noted: list[int] = []
    before = signal.signal(signal.SIGINT, lambda signum, frame: noted.append(signum))
    try:
        with signals_cancel():
            signal.raise_signal(signal.SIGINT)
        assert noted == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, before)
