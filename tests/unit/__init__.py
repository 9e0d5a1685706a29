"""Test tier package: unique module names across tiers."""
