{#- Incremental models pick the runs touched by events committed since their
    last build. Each build stores the xmin of its snapshot: every transaction
    below it had committed (or aborted) when the build read raw. The next
    build reads events whose loading transaction is at or above that value
    (loaded_since_previous_build), so an event committed late by a long
    transaction is never skipped.
    data_type is what the model stores: xid8 in public, bigint in the marts
    (BI clients know bigint, not xid8; an xid8 is below 2^63).
    After restoring raw into a new cluster, build with --full-refresh. -#}
{% macro current_load_watermark(data_type='xid8') -%}
    {%- if data_type == 'xid8' -%}
        pg_snapshot_xmin(pg_current_snapshot())
    {%- else -%}
        pg_snapshot_xmin(pg_current_snapshot())::text::{{ data_type }}
    {%- endif -%}
{%- endmacro %}
