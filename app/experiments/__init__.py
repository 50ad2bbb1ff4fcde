"""Whole experiments in one action (the paper's: split, SDI data, arms, runs, rating) and their
automatic scoring; they orchestrate the packages below them."""
