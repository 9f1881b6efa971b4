{#- column is at or above this model's largest stored _load_watermark.
    data_type is column's type: xid8 (raw and public) or bigint (the marts,
    macro current_load_watermark). The bounds are cast to it (through text,
    whichever type this model stores), never the column, so that its index
    applies.
    The upper bound is always true of a visible row (no transaction at or
    above the snapshot's xmax is visible). It is there for the planner: the
    stored watermark is unknown when the query is planned, and a lower bound
    alone is estimated to match a third of the table, which turns index scans
    into scans of the whole history; a range of two bounds is estimated as a
    narrow one. -#}
{% macro loaded_since_previous_build(column, data_type='xid8') -%}
    {{ column }} >= (
        select coalesce(max(_load_watermark)::text, '0')::{{ data_type }}
        from {{ this }}
    )
    and {{ column }} < pg_snapshot_xmax(pg_current_snapshot())
    {%- if data_type != 'xid8' %}::text::{{ data_type }}{% endif %}
{%- endmacro %}
