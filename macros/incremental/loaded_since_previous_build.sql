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
