{#- Incremental models pick the runs touched by events committed since their
    last build. Each build stores the xmin of its snapshot: every transaction
    below it had committed (or aborted) when the build read raw. The next
    build reads events whose loading transaction is at or above that value
    (loaded_since_previous_build), so an event committed late by a long
    transaction is never skipped.
    After restoring raw into a new cluster, build with --full-refresh. -#}
{% macro current_load_watermark() -%}
    pg_snapshot_xmin(pg_current_snapshot())
{%- endmacro %}
