"""The identity benchmark refuses what it cannot run before it starts any work: FEBRL 4 (reserved for an
independent acceptance test) and FEBRL sets that do not exist."""

from __future__ import annotations

import pytest

from benchmarks import identity


@pytest.mark.parametrize(
    ("febrl", "says"),
    [("4", "reserved"), ("0", "1, 2 and 3"), ("1,5", "1, 2 and 3"), ("two", "1, 2 and 3")],
)
def test_an_unknown_or_reserved_febrl_set_is_refused_before_any_sync(
    febrl: str, says: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_sandbox(*_: object) -> None:
        raise AssertionError("the benchmark started its sandboxes before refusing its arguments")

    monkeypatch.setattr(identity, "_sandboxes", no_sandbox)
    monkeypatch.setattr("sys.argv", ["benchmarks.identity", "--people", "0", "--febrl", febrl])
    with pytest.raises(SystemExit) as exited:
        identity.main()
    assert exited.value.code == 2
    assert says in capsys.readouterr().err
