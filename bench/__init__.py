"""`make bench`: the loader and the dbt project against baselines, measured in one run."""
