import pytest

from mimo_lite.tasks.sandbox import STATUSES, Limits, parse_test, run_tests

DOUBLE = "def double(x):\n    return 2 * x\n"
SUM_STDIN = "print(sum(map(int, input().split())))\n"


def test_assertion_tests_compare_in_the_harness():
    tests = [{"code": "assert double(2) == 4"}, {"code": "assert double(3) == 7"},
             {"code": "assert double(1) in (2, 3)"}, {"code": "assert double(0) < 1"},
             {"code": "assert double(1)"}, {"code": "assert not double(0)"},
             {"code": "assert double('ab') == 'abab'"}, {"code": "assert double([1]) == [1, 1]"},
             {"code": "assert double((1,)) == (1, 1)"}, {"code": "assert double((1,)) == [1, 1]"}]
    results = run_tests(DOUBLE, tests)
    assert [r.passed for r in results] == [True, False, True, True, True, True, True, True,
                                           True, False]
    assert results[1].status == "wrong_answer" and "double(3) gave 6" in results[1].detail


def test_stdin_stdout_tests_ignore_trailing_whitespace_only():
    tests = [{"input": "1 2 3\n", "output": "6\n"}, {"input": "1 2", "output": "3"},
             {"input": "5", "output": "5   \n\n"}, {"input": "1 1", "output": "3"},
             {"input": "1 1", "output": " 2"}]
    assert [r.passed for r in run_tests(SUM_STDIN, tests)] == [True, True, True, False, False]


def test_results_keep_the_order_of_the_tests_and_every_status_is_known():
    tests = [{"code": f"assert double({i}) == {2 * i}"} for i in range(12)]
    tests.insert(5, {"code": "assert double(5) == 11"})
    results = run_tests(DOUBLE, tests)
    assert [r.passed for r in results] == [i != 5 for i in range(13)]
    assert all(r.status in STATUSES for r in results) and all(r.time_s > 0 for r in results)


def test_runtime_errors_and_syntax_errors_are_runtime_errors():
    assert run_tests("def f(:\n", [{"code": "assert f() == 1"}])[0].status == "runtime_error"
    [result] = run_tests("def f():\n    return 1 / 0\n", [{"code": "assert f() == 1"}])
    assert result.status == "runtime_error" and "ZeroDivisionError" in result.detail
    [stdio] = run_tests("raise SystemExit(2)\n", [{"input": "", "output": ""}])
    assert stdio.status == "runtime_error"


def test_a_program_may_end_with_sys_exit_zero_on_stdio():
    [result] = run_tests("import sys\nprint(7)\nsys.exit(0)\n", [{"input": "", "output": "7"}])
    assert result.passed


def test_standard_library_imports_work_inside_the_sandbox():
    program = "import collections, heapq, itertools, math, re, json, functools, bisect\n" \
              "def f():\n    return math.gcd(12, 18) + len(json.dumps([1]))\n"
    assert run_tests(program, [{"code": "assert f() == 9"}])[0].passed


def test_limits_are_the_callers():
    busy = "def f():\n    x = 0\n    for i in range(10 ** 7):\n        x += i\n    return 1\n"
    [quick] = run_tests(busy, [{"code": "assert f() == 1"}], Limits(cpu_s=1, wall_s=0.05))
    assert quick.status == "timeout"
    [small] = run_tests("print('x' * 5000)\n", [{"input": "", "output": "x"}], Limits(output_kb=1))
    assert small.status == "output_limit"


@pytest.mark.parametrize("test, message", [
    ({"code": "f(1) == 2"}, "single assert statement or a test program"),
    ({"code": "assert f(1) ==="}, "not valid Python"),
    ({"input": "1"}, "either 'input' and 'output' or 'code'"),
    ({"input": "1", "output": "2", "code": "assert 1"}, "either"),
    ({"input": 1, "output": "2"}, "string"),
    ("assert f(1) == 2", "must be a dict"),
])
def test_invalid_tests_are_refused_with_a_reason(test, message):
    with pytest.raises(ValueError, match=message):
        parse_test(test)


def test_test_programs_go_to_the_judge_with_the_names_they_need():
    """Several statements, or a comparison with a computed value: a test program, run by the judge
    process, given the names it reads but does not bind (the solution's, never a builtin)."""
    program = parse_test({"code": "def check(c):\n    assert c(1) == len(helper([1]))\ncheck(f)"})
    assert program.probe is None and program.names == ("f", "helper")
    computed = parse_test({"code": "assert f(1) == g(2)"})
    assert computed.test_program == "assert f(1) == g(2)" and computed.names == ("f", "g")
    results = run_tests("def f(x):\n    return x + 1\ndef g(x):\n    return x\n",
                        [{"code": "assert f(1) == g(2)"}, {"code": "assert f(1) == g(3)"},
                         {"code": "import math\nassert math.isclose(f(0.5), 1.5)\nassert f(-1) == 0"}])
    assert [r.status for r in results] == ["passed", "wrong_answer", "passed"]


def test_the_expected_value_stays_in_the_harness():
    check = parse_test({"code": "assert f([1, 2]) == {'a': (1, 2)}", "level": "Easy"})
    assert check.probe == "f([1, 2])" and check.expected == {"a": (1, 2)}
    assert "(1, 2)" not in check.probe


def test_a_machine_that_cannot_confine_files_is_refused(monkeypatch):
    """Without Landlock and without root, run_tests refuses rather than run code unconfined."""
    from mimo_lite.tasks import sandbox

    crippled = sandbox.JAIL.replace("layers += landlock(libc, ctypes, library)", "pass")
    crippled = crippled.replace("    if root:\n", "    if False:\n")
    assert "    if False:\n" in crippled and "layers += landlock" not in crippled
    monkeypatch.setattr(sandbox, "JAIL", crippled)
    sandbox.containment.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="cannot confine the file system"):
            run_tests(DOUBLE, [{"code": "assert double(2) == 4"}])
    finally:
        sandbox.containment.cache_clear()
