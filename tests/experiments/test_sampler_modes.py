"""Sampler mode names: the settings each part sets, and the names refused."""

from __future__ import annotations

import argparse

import pytest

from bgpo_lightning.diffusion.sampler import SamplerConfig
from experiments.sampler_modes import RolloutMode, mode_argument, parse_mode


def test_mode_names_parse_into_sampler_settings():
    base = SamplerConfig(gen_length=8, block_length=4, steps=4)
    config = parse_mode("dual+threshold0.9+refresh2").config(base)
    assert (config.cache, config.threshold, config.cache_refresh_steps) == ("dual", 0.9, 2)
    exact = parse_mode("exact").config(base)
    assert (exact.cache, exact.threshold, exact.cache_refresh_steps) == ("none", None, None)
    assert parse_mode("threshold0.95").threshold == 0.95
    graphed = parse_mode("dual+graph+threshold0.9").config(base)
    assert (graphed.cache, graphed.cuda_graph, graphed.threshold) == ("dual", True, 0.9)
    assert exact.precision == "float64"
    single = parse_mode("dual+graph+f32").config(base)
    assert (single.cache, single.cuda_graph, single.precision) == ("dual", True, "float32")
    compiled = parse_mode("threshold0.9+f32+compile").config(base)
    assert (compiled.threshold, compiled.precision, compiled.compile) == (0.9, "float32", True)
    assert not exact.compile
    bad_names = ("fast", "prefix+dual", "exact+refresh1", "threshold", "prefix+graph", "graph")
    for bad in (*bad_names, "dual+f32+f32", "f16", "compile+compile", "compiled"):
        with pytest.raises(ValueError):
            parse_mode(bad)


def test_a_mode_keeps_its_name_and_leaves_the_shape_to_the_base_config():
    assert parse_mode("prefix+refresh1") == RolloutMode("prefix+refresh1", "prefix", None, 1)
    base = SamplerConfig(gen_length=16, block_length=8, steps=8, temperature=0.7)
    config = parse_mode("prefix+refresh1").config(base)
    assert (config.gen_length, config.block_length, config.steps) == (16, 8, 8)
    assert config.temperature == 0.7


def test_mode_argument_turns_a_malformed_name_into_an_argparse_error():
    assert mode_argument("dual+threshold0.9") == parse_mode("dual+threshold0.9")
    with pytest.raises(argparse.ArgumentTypeError, match="unknown part 'fast' of mode 'fast'"):
        mode_argument("fast")


def test_changed_settings_are_the_config_fields_a_mode_moves_off_their_defaults():
    assert parse_mode("exact").changed_settings() == {}
    assert parse_mode("dual+refresh4+f32+graph+compile").changed_settings() == {
        "cache": "dual",
        "cache_refresh_steps": 4,
        "cuda_graph": True,
        "precision": "float32",
        "compile": True,
    }
