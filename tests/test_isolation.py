"""The suite's own guards (tests/conftest.py): a leaked server thread or root log handler fails, not lingers."""

from __future__ import annotations

from pathlib import Path

pytest_plugins = ["pytester"]

TESTS = Path(__file__).resolve().parent

LEAKY = '''
import logging
import threading

from support.apinode import start_node

from edge.logs import setup_logging


def test_leaves_the_api_running(tmp_path):
    start_node(tmp_path)  # never stopped


def test_stops_the_api(tmp_path):
    start_node(tmp_path).server.stop()


def test_cli_sets_up_logging(capsys):
    setup_logging()  # what an in-process ``edge.cli.main`` does: a handler on this test's captured stderr


def test_logs_from_a_thread_later():
    t = threading.Thread(target=logging.getLogger("edge.api.access").warning, args=("a later request",))
    t.start()
    t.join()
'''


def _suite(pytester) -> None:
    pytester.makeconftest((TESTS / "conftest.py").read_text())
    (pytester.path / "support").symlink_to(TESTS / "support")
    pytester.makepyfile(test_leaky=LEAKY)


def test_a_test_that_leaves_the_api_server_running_fails(pytester) -> None:
    _suite(pytester)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=4, errors=2)  # the test that leaked it, and its module at the end
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaves_the_api_running*",
                                 "this test left threads running after teardown: api; *"])
    errors = [line for line in result.outlines if line.startswith("ERROR ")]
    assert [e.split()[1] for e in errors] == ["test_leaky.py::test_leaves_the_api_running",
                                              "test_leaky.py::test_logs_from_a_thread_later"]


def test_a_root_handler_from_one_test_does_not_reach_the_next(pytester) -> None:
    _suite(pytester)
    # -s: a logging error goes to the real stderr, where this test reads it (capsys still captures inside)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-s", "-k", "logging or later")
    result.assert_outcomes(passed=2)
    text = "\n".join(result.outlines + result.errlines)
    assert "--- Logging error ---" not in text
    assert "I/O operation on closed file" not in text
