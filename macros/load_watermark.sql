{#- Incremental models pick the runs touched by events committed since their
    last build. Each build stores the xmin of its snapshot: every transaction
    below it had committed (or aborted) when the build read raw. The next
    build reads events whose loading transaction is at or above that value,
    so an event committed late by a long transaction is never skipped.
    After restoring raw into a new cluster, build with --full-refresh.
    The models then filter on the ids of the touched runs or stages with
    "= any(array(subquery))" rather than "in (subquery)": the planner takes
    an array it cannot see into for a few elements and reaches the rows
    through the id's index, where an "in" would be estimated from the
    watermark range's fixed share of the history and scan all of it. -#}
{% macro current_load_watermark() -%}
    pg_snapshot_xmin(pg_current_snapshot())
{%- endmacro %}

{#- The upper bound is always true of a visible row (no transaction at or
    above the snapshot's xmax is visible). It is there for the planner: the
    stored watermark is unknown when the query is planned, and a lower bound
    alone is estimated to match a third of the table, which turns index scans
    into scans of the whole history; a range of two bounds is estimated as a
    narrow one. -#}
{% macro loaded_since_previous_build(column) -%}
    {{ column }} >= (
        select coalesce(max(_load_watermark), '0'::xid8) from {{ this }}
    )
    and {{ column }} < pg_snapshot_xmax(pg_current_snapshot())
{%- endmacro %}
