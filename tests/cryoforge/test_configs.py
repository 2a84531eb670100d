"""Tests of :mod:`cryoforge.configs`."""

from dataclasses import dataclass, field

import pytest

from cryoforge.configs import ConfigError, from_dict, to_dict


@dataclass(frozen=True)
class _Inner:
    size: int = 4
    scale: float = 1.0


@dataclass
class _Outer:
    name: str = "x"
    betas: tuple[float, float] = (0.5, 0.9)
    snrs: list[float] = field(default_factory=lambda: [0.1])
    limit: int | None = None
    flag: bool = True
    inner: _Inner = field(default_factory=_Inner)


def test_round_trip_of_nested_dataclasses_through_plain_dicts():
    cfg = _Outer("y", (0.1, 0.2), [1.0, 2.0], 3, False, _Inner(8, 2.5))
    plain = to_dict(cfg)
    assert plain == {"name": "y", "betas": [0.1, 0.2], "snrs": [1.0, 2.0], "limit": 3, "flag": False,
                     "inner": {"size": 8, "scale": 2.5}}
    back = from_dict(_Outer, plain)
    assert back == cfg and isinstance(back.betas, tuple) and isinstance(back.inner, _Inner)
    assert from_dict(_Outer, {}) == _Outer()
    assert from_dict(_Inner, {"scale": 2}).scale == 2.0 and isinstance(from_dict(_Inner, {"scale": 2}).scale, float)


@pytest.mark.parametrize("data, message", [
    ({"sise": 3}, r"_Inner has no setting sise; its settings \(defaults\): size=4, scale=1.0"),
    ({"size": 2.5}, "_Inner.size takes a whole number; got 2.5"),
    ({"size": True}, "_Inner.size takes a whole number; got True"),
    ({"scale": "big"}, "_Inner.scale takes a number; got 'big'"),
])
def test_unknown_keys_and_wrong_types_are_one_line_errors(data, message):
    with pytest.raises(ConfigError, match=message) as err:
        from_dict(_Inner, data)
    assert "\n" not in str(err.value)


def test_nested_errors_name_the_path_and_loose_reading_ignores_other_keys():
    with pytest.raises(ConfigError, match="run.inner.size takes a whole number"):
        from_dict(_Outer, {"inner": {"size": "4"}}, where="run")
    with pytest.raises(ConfigError, match="_Outer.flag takes true or false"):
        from_dict(_Outer, {"flag": 1})
    assert from_dict(_Inner, {"size": 6, "other": 1}, strict=False) == _Inner(6)


def test_a_dataclass_check_becomes_a_config_error():
    from cryoforge.multicryogan.config import McganConfig

    with pytest.raises(ConfigError, match="McganConfig: Multi-CryoGAN boxes are powers of two"):
        from_dict(McganConfig, {"box": 24})
