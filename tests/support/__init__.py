"""Helpers the tests share (and the benchmarks and screenshot script reuse): servers, browsers, small fixtures."""
