{#- The incremental models re-derive only the runs in their changed_runs CTE
    (a pipeline_id column). They filter on it with "= any(array(subquery))"
    rather than "in (subquery)": the planner takes an array it cannot see
    into for a few elements and reaches the rows through the column's index,
    where an "in" would be estimated from the watermark range's fixed share
    of the history and scan all of it. changed_runs is declared "not
    materialized" so that each reader plans it on its own index. -#}
{% macro in_changed_runs(column) -%}
    {{ column }} = any(
        array(select changed_runs.pipeline_id from changed_runs)
    )
{%- endmacro %}
