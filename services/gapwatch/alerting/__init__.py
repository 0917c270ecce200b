"""The alerter: SPC over every ICB's gap series, stale-feed watch, alert delivery."""
